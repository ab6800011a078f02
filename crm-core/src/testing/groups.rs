//! The [`GroupManager`] contract: every adapter (the memory double, the
//! WhatsApp Web channel) runs [`run_all`]. Each behaviour works on groups
//! it creates itself, so one manager can run them all in turn.

use crate::domain::group::{MAX_DESCRIPTION_CHARS, MAX_SUBJECT_CHARS};
use crate::{Error, GroupManager, MessageContent, Phone};

fn phone(n: u32) -> Phone {
    Phone::parse(&format!("+55119{:08}", 70_000_000 + n)).expect("valid phone")
}

fn is_validation(e: &Error, field: &str) -> bool {
    matches!(e, Error::Validation { field: f, .. } if f == field)
}

/// Runs every behaviour against `groups`, whose channel's own number is `me`.
pub async fn run_all(groups: &dyn GroupManager, me: &Phone) {
    create_and_read(groups, me).await;
    rename_and_describe(groups).await;
    participants_and_admins(groups, me).await;
    leave_hides_the_group(groups).await;
    send_to_a_group(groups).await;
    refuses_bad_arguments(groups).await;
}

/// A created group has a `…@g.us` id, the subject, the channel's number
/// as admin and the participants as members; it is listed and readable.
pub async fn create_and_read(groups: &dyn GroupManager, me: &Phone) {
    let created = groups.create_group("Clientes VIP", &[phone(1), phone(2)]).await.expect("[groups] create");
    assert!(created.jid.ends_with("@g.us"), "[groups] a group id ends with @g.us: {}", created.jid);
    crate::domain::group::check_group_jid(&created.jid).expect("[groups] a well-formed group id");
    assert_eq!(created.subject, "Clientes VIP", "[groups] the subject");
    assert_eq!(created.participant(me).map(|p| p.admin), Some(true), "[groups] the creator is an admin");
    for p in [phone(1), phone(2)] {
        assert_eq!(created.participant(&p).map(|m| m.admin), Some(false), "[groups] {p} is a member");
    }
    assert_eq!(created.participants.len(), 3, "[groups] exactly the creator and the participants");
    let listed = groups.list_groups().await.expect("[groups] list");
    assert!(listed.iter().any(|g| g.jid == created.jid && g.subject == "Clientes VIP"), "[groups] listed");
    let info = groups.group_info(&created.jid).await.expect("[groups] info");
    assert_eq!(info.jid, created.jid);
    assert_eq!(info.participants.len(), 3, "[groups] info has the members");
    let members = groups.participants(&created.jid).await.expect("[groups] participants");
    assert_eq!(members.len(), 3);
}

/// The subject and description change; an empty description clears it.
pub async fn rename_and_describe(groups: &dyn GroupManager) {
    let g = groups.create_group("Antes", &[phone(3)]).await.expect("[groups] create");
    groups.set_subject(&g.jid, "Depois ✓").await.expect("[groups] rename");
    groups.set_description(&g.jid, "Ofertas da semana").await.expect("[groups] describe");
    let info = groups.group_info(&g.jid).await.expect("[groups] info");
    assert_eq!(info.subject, "Depois ✓", "[groups] renamed");
    assert_eq!(info.description.as_deref(), Some("Ofertas da semana"), "[groups] described");
    groups.set_description(&g.jid, "").await.expect("[groups] clear the description");
    let info = groups.group_info(&g.jid).await.expect("[groups] info");
    assert_eq!(info.description, None, "[groups] an empty description clears it");
    let limit = "a".repeat(MAX_SUBJECT_CHARS);
    groups.set_subject(&g.jid, &limit).await.expect("[groups] a subject at the limit");
}

/// Members are added (twice is a no-op) and removed; admins promoted and
/// demoted; promoting a non-member is refused.
pub async fn participants_and_admins(groups: &dyn GroupManager, me: &Phone) {
    let g = groups.create_group("Equipe", &[phone(4)]).await.expect("[groups] create");
    groups.add_participants(&g.jid, &[phone(5), phone(6)]).await.expect("[groups] add");
    groups.add_participants(&g.jid, &[phone(5)]).await.expect("[groups] adding a member again is no error");
    let members = groups.participants(&g.jid).await.expect("[groups] participants");
    assert_eq!(members.len(), 4, "[groups] me, 4, 5 and 6: {members:?}");
    groups.remove_participants(&g.jid, &[phone(6)]).await.expect("[groups] remove");
    let members = groups.participants(&g.jid).await.expect("[groups] participants");
    assert!(!members.iter().any(|m| m.has_phone(&phone(6))), "[groups] removed");
    assert_eq!(members.len(), 3);

    groups.promote_admins(&g.jid, &[phone(5)]).await.expect("[groups] promote");
    let info = groups.group_info(&g.jid).await.expect("[groups] info");
    assert_eq!(info.participant(&phone(5)).map(|p| p.admin), Some(true), "[groups] promoted");
    assert_eq!(info.participant(&phone(4)).map(|p| p.admin), Some(false), "[groups] others unchanged");
    assert_eq!(info.participant(me).map(|p| p.admin), Some(true));
    groups.demote_admins(&g.jid, &[phone(5)]).await.expect("[groups] demote");
    let info = groups.group_info(&g.jid).await.expect("[groups] info");
    assert_eq!(info.participant(&phone(5)).map(|p| p.admin), Some(false), "[groups] demoted");

    let e = groups.promote_admins(&g.jid, &[phone(99)]).await.expect_err("[groups] promoting a non-member");
    assert!(is_validation(&e, "participants"), "[groups] promoting a non-member is Validation: {e:?}");
}

/// After leaving, the group is not listed and every operation on it is
/// `NotFound`; an unknown group is `NotFound` too.
pub async fn leave_hides_the_group(groups: &dyn GroupManager) {
    let g = groups.create_group("Temporário", &[phone(7)]).await.expect("[groups] create");
    groups.leave_group(&g.jid).await.expect("[groups] leave");
    let listed = groups.list_groups().await.expect("[groups] list");
    assert!(!listed.iter().any(|x| x.jid == g.jid), "[groups] a left group is not listed");
    let e = groups.group_info(&g.jid).await.expect_err("[groups] info of a left group");
    assert!(matches!(e, Error::NotFound { .. }), "[groups] {e:?}");
    let e = groups.send_to_group(&g.jid, &MessageContent::text("oi")).await.expect_err("[groups] send after leaving");
    assert!(matches!(e, Error::NotFound { .. }), "[groups] {e:?}");
    let e = groups.leave_group(&g.jid).await.expect_err("[groups] leave twice");
    assert!(matches!(e, Error::NotFound { .. }), "[groups] {e:?}");
    let unknown = "120363999999999999@g.us";
    let e = groups.set_subject(unknown, "x").await.expect_err("[groups] unknown group");
    assert!(matches!(e, Error::NotFound { .. }), "[groups] an unknown group is NotFound: {e:?}");
    let e = groups.add_participants(unknown, &[phone(1)]).await.expect_err("[groups] unknown group");
    assert!(matches!(e, Error::NotFound { .. }), "[groups] {e:?}");
}

/// A send answers a provider id; two sends answer two ids.
pub async fn send_to_a_group(groups: &dyn GroupManager) {
    let g = groups.create_group("Avisos", &[phone(8)]).await.expect("[groups] create");
    let a = groups.send_to_group(&g.jid, &MessageContent::text("Bom dia!")).await.expect("[groups] send");
    let b = groups.send_to_group(&g.jid, &MessageContent::text("Segunda")).await.expect("[groups] send");
    assert!(!a.provider_message_id.is_empty(), "[groups] a provider id");
    assert_ne!(a.provider_message_id, b.provider_message_id, "[groups] one id per message");
    let e = groups.send_to_group(&g.jid, &MessageContent::text("")).await.expect_err("[groups] empty text");
    assert!(matches!(e, Error::Validation { .. }), "[groups] {e:?}");
}

/// Bad arguments are `Validation` naming the field, before any change.
pub async fn refuses_bad_arguments(groups: &dyn GroupManager) {
    let before = groups.list_groups().await.expect("[groups] list").len();
    let e = groups.create_group("   ", &[phone(1)]).await.expect_err("[groups] blank subject");
    assert!(is_validation(&e, "subject"), "[groups] {e:?}");
    let long = "s".repeat(MAX_SUBJECT_CHARS + 1);
    let e = groups.create_group(&long, &[phone(1)]).await.expect_err("[groups] long subject");
    assert!(is_validation(&e, "subject"), "[groups] {e:?}");
    let e = groups.create_group("Vazio", &[]).await.expect_err("[groups] no participants");
    assert!(is_validation(&e, "participants"), "[groups] {e:?}");
    let e = groups.create_group("Dois", &[phone(1), phone(1)]).await.expect_err("[groups] a repeated participant");
    assert!(is_validation(&e, "participants"), "[groups] {e:?}");
    assert_eq!(groups.list_groups().await.expect("[groups] list").len(), before, "[groups] nothing was created");

    let g = groups.create_group("Limites", &[phone(9)]).await.expect("[groups] create");
    let e = groups.set_subject(&g.jid, "").await.expect_err("[groups] empty subject");
    assert!(is_validation(&e, "subject"), "[groups] {e:?}");
    let e = groups
        .set_description(&g.jid, &"d".repeat(MAX_DESCRIPTION_CHARS + 1))
        .await
        .expect_err("[groups] long description");
    assert!(is_validation(&e, "description"), "[groups] {e:?}");
    groups.set_description(&g.jid, &"d".repeat(MAX_DESCRIPTION_CHARS)).await.expect("[groups] at the limit");
    for bad in ["5511987654321@c.us", "nope", "1@g.us.evil"] {
        let e = groups.group_info(bad).await.expect_err("[groups] a malformed group id");
        assert!(is_validation(&e, "group"), "[groups] {bad}: {e:?}");
    }
    assert_eq!(groups.group_info(&g.jid).await.expect("[groups] info").subject, "Limites", "[groups] unchanged");
}
