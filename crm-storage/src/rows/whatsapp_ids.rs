//! The WhatsApp id map: its statements and the reads both dialects share.

use crm_core::{AccountId, ChannelId, Error, Phone, Result, WhatsAppIdentity};

use super::{Columns, Fetch};

/// Whether the channel is the account's: `$1` channel, `$2` account.
pub(crate) const CHANNEL_OF_ACCOUNT: &str = "SELECT 1 FROM channels WHERE id = $1 AND account_id = $2";

/// Takes a LID off the channel's other phones: `$1` channel, `$2` LID, `$3` phone.
pub(crate) const CLEAR_LID: &str =
    "UPDATE whatsapp_ids SET lid = NULL WHERE channel_id = $1 AND lid = $2 AND phone <> $3";

/// Links a LID to a phone: `$1` channel, `$2` phone, `$3` LID.
pub(crate) const LINK_LID: &str = "INSERT INTO whatsapp_ids (channel_id, phone, lid) VALUES ($1, $2, $3) \
     ON CONFLICT (channel_id, phone) DO UPDATE SET lid = excluded.lid";

/// Records a phone's confirmed WhatsApp id: `$1` channel, `$2` phone, `$3` id.
pub(crate) const RECORD_WHATSAPP_ID: &str = "INSERT INTO whatsapp_ids (channel_id, phone, whatsapp_id) \
     VALUES ($1, $2, $3) ON CONFLICT (channel_id, phone) DO UPDATE SET whatsapp_id = excluded.whatsapp_id";

fn identity_row(r: &impl Columns) -> Result<WhatsAppIdentity> {
    Ok(WhatsAppIdentity {
        channel_id: ChannelId::from_uuid(r.uuid("channel_id")?),
        phone: r.parsed("phone", Phone::parse)?,
        lid: r.opt_text("lid")?,
        whatsapp_id: r.opt_text("whatsapp_id")?,
    })
}

async fn check_channel(db: &impl Fetch, account: AccountId, channel: ChannelId) -> Result<()> {
    let args = vec![channel.into_uuid().into(), account.into_uuid().into()];
    match db.fetch_optional("looking up a channel", CHANNEL_OF_ACCOUNT, args).await? {
        Some(_) => Ok(()),
        None => Err(Error::not_found("channel")),
    }
}

/// [`WhatsAppIdStore::whatsapp_identity`](crm_core::WhatsAppIdStore::whatsapp_identity).
pub(crate) async fn whatsapp_identity(
    db: &impl Fetch,
    account: AccountId,
    channel: ChannelId,
    phone: &Phone,
) -> Result<Option<WhatsAppIdentity>> {
    check_channel(db, account, channel).await?;
    let sql = "SELECT * FROM whatsapp_ids WHERE channel_id = $1 AND phone = $2";
    let row = db.fetch_optional("reading a WhatsApp id", sql, vec![channel.into_uuid().into(), phone.as_str().into()]);
    row.await?.map(|r| identity_row(&r)).transpose()
}

/// [`WhatsAppIdStore::phone_for_lid`](crm_core::WhatsAppIdStore::phone_for_lid).
pub(crate) async fn phone_for_lid(
    db: &impl Fetch,
    account: AccountId,
    channel: ChannelId,
    lid: &str,
) -> Result<Option<Phone>> {
    crm_core::ports::whatsapp_ids::check_lid(lid)?;
    check_channel(db, account, channel).await?;
    let sql = "SELECT * FROM whatsapp_ids WHERE channel_id = $1 AND lid = $2";
    let row = db.fetch_optional("reading a LID", sql, vec![channel.into_uuid().into(), lid.into()]);
    Ok(row.await?.map(|r| identity_row(&r)).transpose()?.map(|i| i.phone))
}

/// [`WhatsAppIdStore`](crm_core::WhatsAppIdStore) for a SQL store, the same
/// statements for both dialects: expanded in each dialect's module, where
/// `super::{Tx, commit}` and the store's `write()` (its write transaction)
/// are that dialect's.
macro_rules! whatsapp_id_store {
    ($store:ty) => {
        /// Runs `sql` (`$1` channel, `$2` phone, `$3` value) in `tx` once
        /// the channel is found to be the account's.
        async fn upsert(
            tx: &mut super::Tx,
            account: ::crm_core::AccountId,
            channel: ::crm_core::ChannelId,
            sql: &'static str,
            phone: &::crm_core::Phone,
            value: &str,
        ) -> ::crm_core::Result<()> {
            use $crate::rows::whatsapp_ids::CHANNEL_OF_ACCOUNT;
            let found = ::sqlx::query(CHANNEL_OF_ACCOUNT)
                .bind(channel.into_uuid())
                .bind(account.into_uuid())
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| $crate::error::db("looking up a channel", e))?;
            if found.is_none() {
                return Err(::crm_core::Error::not_found("channel"));
            }
            ::sqlx::query(sql)
                .bind(channel.into_uuid())
                .bind(phone.as_str())
                .bind(value)
                .execute(&mut **tx)
                .await
                .map_err(|e| $crate::error::db("storing a WhatsApp id", e))?;
            Ok(())
        }

        #[::async_trait::async_trait]
        impl ::crm_core::WhatsAppIdStore for $store {
            async fn link_lid(
                &self,
                account: ::crm_core::AccountId,
                channel: ::crm_core::ChannelId,
                phone: &::crm_core::Phone,
                lid: &str,
            ) -> ::crm_core::Result<()> {
                use $crate::rows::whatsapp_ids::{CLEAR_LID, LINK_LID};
                ::crm_core::ports::whatsapp_ids::check_lid(lid)?;
                let mut tx = self.write().await?;
                ::sqlx::query(CLEAR_LID)
                    .bind(channel.into_uuid())
                    .bind(lid)
                    .bind(phone.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| $crate::error::db("moving a LID", e))?;
                upsert(&mut tx, account, channel, LINK_LID, phone, lid).await?;
                super::commit(tx).await
            }

            async fn record_whatsapp_id(
                &self,
                account: ::crm_core::AccountId,
                channel: ::crm_core::ChannelId,
                phone: &::crm_core::Phone,
                whatsapp_id: &str,
            ) -> ::crm_core::Result<()> {
                use $crate::rows::whatsapp_ids::RECORD_WHATSAPP_ID;
                ::crm_core::ports::whatsapp_ids::check_whatsapp_id(whatsapp_id)?;
                let mut tx = self.write().await?;
                upsert(&mut tx, account, channel, RECORD_WHATSAPP_ID, phone, whatsapp_id).await?;
                super::commit(tx).await
            }

            async fn whatsapp_identity(
                &self,
                account: ::crm_core::AccountId,
                channel: ::crm_core::ChannelId,
                phone: &::crm_core::Phone,
            ) -> ::crm_core::Result<Option<::crm_core::WhatsAppIdentity>> {
                $crate::rows::whatsapp_ids::whatsapp_identity(self, account, channel, phone).await
            }

            async fn phone_for_lid(
                &self,
                account: ::crm_core::AccountId,
                channel: ::crm_core::ChannelId,
                lid: &str,
            ) -> ::crm_core::Result<Option<::crm_core::Phone>> {
                $crate::rows::whatsapp_ids::phone_for_lid(self, account, channel, lid).await
            }
        }
    };
}
pub(crate) use whatsapp_id_store;
