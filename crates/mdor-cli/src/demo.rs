//! `mdor demo`: a fresh embedded database with a synthetic national dataset, three tokens
//! (provider, regulator, administrator) and the server, in one command.

use std::path::Path;

use anyhow::Context;

use mdor_domain::OdsCode;
use mdor_service::{Ctx, NewOrganisation, OrganisationKind, Role};
use mdor_store::ConnectOptions;

use crate::config::LogFormat;
use crate::{load, print, telemetry};

/// Loads in well under a minute on a 2-core machine.
pub const DEFAULT_PROCEDURES: u64 = 100_000;

pub async fn run(procedures: u64, seed: u64, listen: &str, dir: &Path) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Pretty);
    let listen: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen '{listen}' is not address:port"))?;
    let dataset = dir.join("dataset");
    std::fs::create_dir_all(&dataset).with_context(|| format!("creating {}", dataset.display()))?;
    let database = dir.join("mdor-demo.db");
    // The registry's file, its WAL, and the derived by-patient index of the audit (which a new
    // log would ignore and rebuild anyway, since its watermark would not match).
    for suffix in [
        "",
        "-wal",
        "-shm",
        ".patient-index",
        ".patient-index-wal",
        ".patient-index-shm",
    ] {
        let path = format!("{}{suffix}", database.display());
        if Path::new(&path).exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the previous demo database {path}"))?;
        }
    }
    let started = std::time::Instant::now();
    print(&format!(
        "generating {procedures} synthetic procedures (seed {seed})…\n"
    ));
    let summary =
        mdor_synth::write_dataset(&dataset, &mdor_synth::SynthConfig::new(seed, procedures))?;
    // A fresh key-encryption key per demo database, beside it: a demo, not a deployment,
    // where the key lives apart from the database (docs/security.md).
    let kek_file = dir.join("identifiers.kek");
    if kek_file.exists() {
        std::fs::remove_file(&kek_file)
            .with_context(|| format!("removing the previous demo key {}", kek_file.display()))?;
    }
    crate::audit::write_new_file(
        &kek_file,
        &mdor_store::KeyEncryptionKey::generate_text(),
        0o600,
    )?;
    let kek = crate::config::KekSource::File(kek_file.clone()).load()?;
    let url = format!("sqlite://{}", database.display());
    let options = ConnectOptions {
        kek: Some(kek),
        ..ConnectOptions::default()
    };
    let store = mdor_store::connect(&url, &options).await?;
    let ctx = Ctx::new(store);
    ctx.migrate().await?;
    print("loading it into a fresh SQLite database…\n");
    let loaded = load::load_dataset(&ctx, &dataset).await?;
    let registry_bodies = [
        (
            "MDOR",
            "Medical Device Outcome Registry",
            OrganisationKind::Registry,
        ),
        (
            "MHRA",
            "Medicines and Healthcare products Regulatory Agency",
            OrganisationKind::Regulator,
        ),
    ];
    for (ods, name, kind) in registry_bodies {
        let organisation = NewOrganisation {
            ods_code: OdsCode::parse(ods)?,
            name: name.into(),
            kind,
            region: None,
        };
        mdor_service::ensure_organisations(&ctx, &[organisation]).await?;
    }
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dataset.join("truth.json")).context("reading truth.json")?,
    )?;
    let provider = truth["injected"]["provider"]["ods_code"]
        .as_str()
        .unwrap_or("RA1")
        .to_string();
    let token = |ods: String, role: Role, label: &'static str| {
        let ctx = ctx.clone();
        async move {
            let created = mdor_service::create_token(&ctx, &OdsCode::parse(&ods)?, role, label)
                .await
                .map_err(load::describe)?;
            anyhow::Ok(created.secret)
        }
    };
    let provider_token = token(provider.clone(), Role::ProviderSubmitter, "demo provider").await?;
    let regulator_token = token("MHRA".into(), Role::Regulator, "demo regulator").await?;
    let admin_token = token("MDOR".into(), Role::Admin, "demo administrator").await?;
    let lot_udi = truth["injected"]["faulty_lot"]["udi_di"]
        .as_str()
        .unwrap_or_default();
    let lot = truth["injected"]["faulty_lot"]["lot"]
        .as_str()
        .unwrap_or_default();
    print(&format!(
        "\nmdor demo ready in {:.0} s: {} procedures, {} implants, {} patients, {} removals, {} deaths \
         ({} generated; rejected lines, if any, are in {}).\n\n\
         Open:\n  http://{listen}/health\n  http://{listen}/api/v1/openapi.json\n\n\
         Tokens (synthetic data only; NHS numbers are in the 999 test range):\n  \
         provider {provider} (submit and read own procedures): {provider_token}\n  \
         regulator MHRA (recall queries):                   {regulator_token}\n  \
         administrator MDOR (administration; records only by breaking glass): {admin_token}\n\n\
         Try the recall of the injected faulty lot (a regulator states its purpose):\n  \
         curl -H 'Authorization: Bearer {regulator_token}' -H 'Access-Purpose: recall' 'http://{listen}/api/v1/recall?udi_di={lot_udi}&lot={lot}&limit=5'\n\n\
         Press Ctrl-C to stop.\n",
        started.elapsed().as_secs_f64(),
        loaded.procedures,
        loaded.implants,
        loaded.new_patients,
        loaded.removals,
        loaded.deaths,
        summary.n_procedures,
        dataset.join("load-rejects.ndjson").display(),
    ));
    // Passkeys in the demo are bound to this machine's localhost, where browsers allow them
    // over plain HTTP.
    let relying = mdor_service::webauthn::Relying::new(&mdor_service::webauthn::WebauthnSettings {
        relying_party_id: "localhost".into(),
        origin: url::Url::parse(&format!("http://localhost:{}", listen.port()))
            .context("the demo's webauthn origin")?,
    })
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    let ctx = ctx.with_webauthn(relying);
    let background = crate::Background {
        keep_cohorts_warm: true,
        surveil_after_ingest: true,
    };
    crate::serve(ctx, listen, background, mdor_web::WebSettings::default()).await
}
