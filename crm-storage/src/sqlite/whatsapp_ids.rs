//! [`WhatsAppIdStore`](crm_core::WhatsAppIdStore) over SQLite: the statements
//! both dialects share (`rows::whatsapp_ids`), in SQLite's transactions.

use super::SqliteStore;

crate::rows::whatsapp_ids::whatsapp_id_store!(SqliteStore);
