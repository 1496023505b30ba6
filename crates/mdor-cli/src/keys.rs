//! `mdor keys`: the key-encryption key of patient identifiers — create one, show the keys a
//! database uses, rotate them.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use mdor_service::Ctx;
use mdor_store::KeyEncryptionKey;

use crate::config::KekSource;
use crate::print;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Write a new random key-encryption key (64 hex digits) to a new file, mode 0600.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Show which key-encryption key and field key the database uses, and whether a rotation
    /// or the sealing of identifiers written before encryption is unfinished.
    Status,
    /// Re-wrap every data key (under NEW when given), add a new field key and re-encrypt
    /// every identifier under it, then retire the old keys. Interrupted, run it again with
    /// the same arguments: it finishes the rotation it began.
    Rotate {
        /// The new key-encryption key; afterwards set keys.kek_file to it.
        #[arg(long)]
        new_kek_file: Option<PathBuf>,
    },
}

impl KeysCommand {
    pub fn is_offline(&self) -> bool {
        matches!(self, KeysCommand::Keygen { .. })
    }
}

pub fn run_offline(command: KeysCommand) -> anyhow::Result<()> {
    if let KeysCommand::Keygen { out } = command {
        crate::audit::write_new_file(&out, &KeyEncryptionKey::generate_text(), 0o600)?;
        let kek = KekSource::File(out.clone()).load()?;
        print(&format!(
            "key-encryption key {} written to {}; set keys.kek_file to it and back it up \
             apart from the database\n",
            kek.id(),
            out.display()
        ));
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, command: KeysCommand) -> anyhow::Result<()> {
    ctx.check_ready().await?;
    match command {
        KeysCommand::Keygen { .. } => run_offline(command),
        KeysCommand::Status => {
            let status = ctx
                .key_status()
                .await
                .context("reading the identifier keys")?;
            print(&format!("{}\n", serde_json::to_string_pretty(&status)?));
            Ok(())
        }
        KeysCommand::Rotate { new_kek_file } => {
            let new_kek = new_kek_file
                .as_ref()
                .map(|path| KekSource::File(path.clone()).load())
                .transpose()?;
            let rotation = ctx
                .rotate_keys(new_kek)
                .await
                .context("rotating the identifier keys")?;
            print(&format!("{}\n", serde_json::to_string_pretty(&rotation)?));
            if let Some(path) = new_kek_file {
                print(&format!(
                    "the data keys are now wrapped by {}: set keys.kek_file to {} before \
                     restarting any server\n",
                    rotation.kek_id,
                    path.display()
                ));
            }
            Ok(())
        }
    }
}
