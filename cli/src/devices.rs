//! `pushmfa devices`: list, remove, rename.

use crate::account::utc;
use crate::args::DevicesCommand;
use crate::calls::{self, done};
use crate::proof::proof_if_needed;
use pushmfa_protocol::admin_client::ClientError;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest};
use std::path::Path;

pub(crate) fn devices(socket: &Path, command: DevicesCommand) -> Result<(), ClientError> {
    match command {
        DevicesCommand::List { user } => {
            let AdminReply::DeviceList { user, devices } =
                calls::call(socket, AdminRequest::Devices { user })?
            else {
                return Err(ClientError::Unexpected);
            };
            if devices.is_empty() {
                println!("{user} has no devices (enroll one with: pushmfa enroll)");
            }
            for d in devices {
                println!(
                    "{}  {:<24}  added {}  {}",
                    d.id,
                    d.name,
                    utc(d.added_at),
                    d.capabilities()
                );
            }
            Ok(())
        }
        DevicesCommand::Remove { device, user } => {
            let proof = proof_if_needed(socket, &user, "remove a device")?;
            done(
                socket,
                AdminRequest::DeviceRemove {
                    user,
                    device,
                    proof,
                },
            )
        }
        DevicesCommand::Rename { device, name, user } => {
            done(socket, AdminRequest::DeviceRename { user, device, name })
        }
    }
}
