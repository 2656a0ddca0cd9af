//! The push step's parts shared by logins and device proofs: one signed
//! challenge (`challenge`), its delivery through the relay (`delivery`),
//! and the passkey check where the user must be verified (`verify_user`).

pub mod challenge;
pub mod delivery;
pub mod verify_user;
