//! `mdor research`: approved research projects, the researchers each names (who then read its
//! pseudonymised extract over the API), and extracts written by the operator for release.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use mdor_domain::OdsCode;
use mdor_service::Ctx;
use mdor_service::accounts::Username;
use mdor_service::research::ResearchProjectRequest;

use crate::{load, print};

#[derive(Subcommand)]
pub enum ResearchCommand {
    /// Record an approved project; it gets its own pseudonym key, so its extracts cannot be
    /// linked with another project's.
    Create {
        /// The approval's reference, e.g. the data access committee's.
        #[arg(long)]
        reference: String,
        #[arg(long)]
        title: String,
        /// ODS code of the organisation the extract is released to.
        #[arg(long)]
        org: String,
        /// Who approved it.
        #[arg(long)]
        approved_by: String,
        /// Only this registry's procedures.
        #[arg(long)]
        registry: Option<String>,
        /// The approval's last day (YYYY-MM-DD): after it the extract is closed to everyone.
        #[arg(long)]
        expires_on: Option<chrono::NaiveDate>,
    },
    /// Name a researcher on a project, as its approval does: their account (a researcher's)
    /// may then read the extract over the API. Audited.
    AddMember(Member),
    /// Remove a researcher from a project: the extract is closed to them from now on. Audited.
    RemoveMember(Member),
    /// Write a project's pseudonymised extract as NDJSON to a new file (mode 0600), narrowed
    /// if asked to procedures implanted in a date range or devices of one type; every page
    /// read is audited with the narrowing.
    Extract {
        #[arg(long)]
        project: String,
        #[arg(long)]
        out: PathBuf,
        /// Only procedures on or after this day (YYYY-MM-DD).
        #[arg(long)]
        implanted_from: Option<chrono::NaiveDate>,
        /// Only procedures on or before this day (YYYY-MM-DD).
        #[arg(long)]
        implanted_to: Option<chrono::NaiveDate>,
        /// Only devices of this device-register type (e.g. hip_cup).
        #[arg(long)]
        device_type: Option<String>,
    },
}

/// A researcher on a project.
#[derive(Args)]
pub struct Member {
    /// The project's reference.
    #[arg(long)]
    project: String,
    /// The researcher's username.
    #[arg(long)]
    username: String,
}

pub async fn run(ctx: &Ctx, command: ResearchCommand) -> anyhow::Result<()> {
    ctx.check_ready().await?;
    match command {
        ResearchCommand::Create {
            reference,
            title,
            org,
            approved_by,
            registry,
            expires_on,
        } => {
            let request = ResearchProjectRequest {
                reference,
                title,
                organisation: OdsCode::parse(&org)?,
                registry,
                approved_by,
                expires_on,
            };
            let project = mdor_service::research::create_research_project(ctx, &request)
                .await
                .map_err(load::describe)?;
            print(&format!(
                "research project {} created for {}\n",
                project.reference, project.organisation_ods
            ));
            Ok(())
        }
        ResearchCommand::AddMember(member) => {
            let username = Username::parse(&member.username).map_err(load::describe)?;
            let project =
                mdor_service::research::add_research_member(ctx, &member.project, &username)
                    .await
                    .map_err(load::describe)?;
            print(&format!(
                "{} named on research project {}\n",
                username.as_str(),
                project.reference
            ));
            Ok(())
        }
        ResearchCommand::RemoveMember(member) => {
            let username = Username::parse(&member.username).map_err(load::describe)?;
            let project =
                mdor_service::research::remove_research_member(ctx, &member.project, &username)
                    .await
                    .map_err(load::describe)?;
            print(&format!(
                "{} removed from research project {}\n",
                username.as_str(),
                project.reference
            ));
            Ok(())
        }
        ResearchCommand::Extract {
            project,
            out,
            implanted_from,
            implanted_to,
            device_type,
        } => {
            use std::os::unix::fs::OpenOptionsExt as _;
            let filter = mdor_service::research::ResearchFilter {
                implanted_from,
                implanted_to,
                device_type,
            };
            // Checked before the file is created, so that a bad narrowing leaves nothing.
            mdor_service::research::check_filter(&filter).map_err(load::describe)?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            let rows = mdor_service::research::research_extract(ctx, &project, filter, |row| {
                serde_json::to_writer(&mut writer, row)?;
                writer.write_all(b"\n")
            })
            .await
            .map_err(load::describe)?;
            writer
                .flush()
                .with_context(|| format!("writing {}", out.display()))?;
            print(&format!(
                "{rows} rows of project {project} written to {}\n",
                out.display()
            ));
            Ok(())
        }
    }
}
