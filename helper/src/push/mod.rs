//! The push step's parts shared by logins and device proofs: one signed
//! challenge (`challenge`) and its delivery through the relay (`delivery`).

pub mod challenge;
pub mod delivery;
