//! The push step's parts shared by logins and device proofs: one signed
//! challenge (`challenge`), its delivery through the relay (`delivery`),
//! the passkey check where the user must be verified (`verify_user`), and
//! how a login shows it (`mode`).

pub mod challenge;
pub mod delivery;
pub mod mode;
pub mod verify_user;
