//! [`WhatsAppIdStore`](crm_core::WhatsAppIdStore) over PostgreSQL: the statements
//! both dialects share (`rows::whatsapp_ids`), in PostgreSQL's transactions.

use super::PgStore;

crate::rows::whatsapp_ids::whatsapp_id_store!(PgStore);
