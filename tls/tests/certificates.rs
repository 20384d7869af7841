//! Loading and reloading certificate files: every bad input is an error that
//! names the file; a reload swaps certificates for new handshakes only.

mod common;

use std::sync::Arc;

use common::*;
use rcgen::{ExtendedKeyUsagePurpose, date_time_ymd};
use ringway_tls::rustls::client::Resumption;
use ringway_tls::rustls::version::TLS13;
use ringway_tls::{CertSpec, ErrorKind, ServerTls, TlsError, client_config};

fn load_err(specs: &[CertSpec], client_ca: Option<&std::path::Path>) -> TlsError {
    ServerTls::load(specs, client_ca).expect_err("load should fail")
}

#[test]
fn bad_files_name_the_file() {
    let dir = TempDir::new();
    let ca = Ca::new("Test CA");
    let good = ca.server_leaf(&["a.test"]).write(&dir, "good");
    let other = ca.server_leaf(&["b.test"]).write(&dir, "other");
    let garbage = dir.write("garbage.pem", "this is not PEM at all\n");
    let broken_pem = dir.write("broken.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    let bad_der = dir.write(
        "bad-der.pem",
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    );
    let missing = dir.path("missing.pem");
    let expired = ca
        .leaf(&["a.test"], ExtendedKeyUsagePurpose::ServerAuth, |p| {
            p.not_before = date_time_ymd(2000, 1, 1);
            p.not_after = date_time_ymd(2001, 1, 1);
        })
        .write(&dir, "expired");
    let future = ca
        .leaf(&["a.test"], ExtendedKeyUsagePurpose::ServerAuth, |p| {
            p.not_before = date_time_ymd(2090, 1, 1);
            p.not_after = date_time_ymd(2091, 1, 1);
        })
        .write(&dir, "future");

    let cases = [
        (
            "missing cert",
            CertSpec::new(&missing, &good.key),
            &missing,
            ErrorKind::FileMissing,
        ),
        (
            "missing key",
            CertSpec::new(&good.cert, &missing),
            &missing,
            ErrorKind::FileMissing,
        ),
        (
            "directory",
            CertSpec::new(&dir.0, &good.key),
            &dir.0,
            ErrorKind::FileUnreadable,
        ),
        (
            "garbage cert",
            CertSpec::new(&garbage, &good.key),
            &garbage,
            ErrorKind::NoCertificate,
        ),
        (
            "garbage key",
            CertSpec::new(&good.cert, &garbage),
            &garbage,
            ErrorKind::NoPrivateKey,
        ),
        (
            "cert as key",
            CertSpec::new(&good.cert, &good.cert),
            &good.cert,
            ErrorKind::NoPrivateKey,
        ),
        (
            "broken PEM",
            CertSpec::new(&broken_pem, &good.key),
            &broken_pem,
            ErrorKind::BadPem,
        ),
        (
            "bad DER",
            CertSpec::new(&bad_der, &good.key),
            &bad_der,
            ErrorKind::InvalidCertificate,
        ),
        (
            "mismatched key",
            CertSpec::new(&good.cert, &other.key),
            &other.key,
            ErrorKind::KeyMismatch,
        ),
        (
            "expired",
            expired.clone(),
            &expired.cert,
            ErrorKind::Expired,
        ),
        (
            "not yet valid",
            future.clone(),
            &future.cert,
            ErrorKind::NotYetValid,
        ),
    ];
    for (what, spec, named, kind) in cases {
        // The bad spec second: a later certificate fails the whole load too.
        let err = load_err(&[good.clone(), spec.clone()], None);
        assert_eq!(err.kind(), kind, "{what}: {err}");
        assert_names(&err, named);
        assert_eq!(err.path(), Some(named.as_path()), "{what}");
        // The same checks guard the upstream client certificate.
        let err = client_config(None, Some(&spec)).expect_err(what);
        assert_eq!(err.kind(), kind, "{what} (client): {err}");
    }

    // What an operator reads.
    let err = load_err(std::slice::from_ref(&expired), None);
    assert!(
        err.to_string()
            .contains("expired.crt: certificate expired on Jan  1 00:00:00 2001"),
        "{err}"
    );
    let err = load_err(&[CertSpec::new(&good.cert, &other.key)], None);
    let want = format!(
        "{}: private key does not match certificate: key does not belong to {}",
        other.key.display(),
        good.cert.display()
    );
    assert_eq!(err.to_string(), want);
}

#[test]
fn bad_ca_bundles_name_the_file() {
    let dir = TempDir::new();
    let ca = Ca::new("Test CA");
    let good = ca.server_leaf(&["a.test"]).write(&dir, "good");
    let empty = dir.write("empty.pem", "");
    let missing = dir.path("missing-ca.pem");
    for (path, kind) in [
        (&empty, ErrorKind::EmptyCaBundle),
        (&missing, ErrorKind::FileMissing),
    ] {
        let err = load_err(std::slice::from_ref(&good), Some(path));
        assert_eq!(err.kind(), kind, "{err}");
        assert_names(&err, path);
        let err = client_config(Some(path), None).unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert_names(&err, path);
    }
}

#[test]
fn no_certificate_is_a_config_error() {
    assert_eq!(load_err(&[], None).kind(), ErrorKind::Config);
}

#[test]
fn certificate_info() {
    let dir = TempDir::new();
    let ca = Ca::new("Test CA");
    let spec = ca
        .leaf(
            &["A.test", "*.b.test"],
            ExtendedKeyUsagePurpose::ServerAuth,
            |p| {
                p.not_after = date_time_ymd(2100, 1, 2);
            },
        )
        .write(&dir, "a");
    let tls = ServerTls::load(std::slice::from_ref(&spec), None).unwrap();
    let info = &tls.certificates()[0];
    assert_eq!(info.file, spec.cert);
    assert_eq!(info.dns_names, ["a.test", "*.b.test"]);
    assert_eq!(info.not_after_unix, 4_102_531_200);
}

#[test]
fn reload_swaps_certificates_for_new_handshakes_only() {
    let dir = TempDir::new();
    let ca = Ca::new("Test CA");
    let old = ca.server_leaf(&["a.test"]);
    let spec = old.write(&dir, "a");
    let tls = ServerTls::load(std::slice::from_ref(&spec), None).unwrap();
    let server = EchoServer::start(tls.worker_config());
    // Without resumption: a resumed session reports the certificate of its
    // original handshake, which is not what this test looks at.
    let mut client = std_client(&ca.der(), &[&TLS13], None);
    client.resumption = Resumption::disabled();
    let client = Arc::new(client);

    let mut open = std_connect(server.addr, &client, "a.test").unwrap();
    std_round_trip(&mut open, b"before").unwrap();
    assert!(std_server_cert(&open) == old.der);
    server.next().unwrap();

    // Rewrite the files with a new certificate, then reload.
    let new = ca.server_leaf(&["a.test"]);
    new.write(&dir, "a");
    tls.reload().unwrap();

    let fresh = std_connect(server.addr, &client, "a.test").unwrap();
    assert!(
        std_server_cert(&fresh) == new.der,
        "new handshake still sees the old certificate"
    );
    server.next().unwrap();
    std_close(fresh);
    // The connection opened before the reload carries on.
    std_round_trip(&mut open, &vec![7u8; 200_000]).unwrap();
    std_close(open);

    // A broken file: the reload fails naming it, and the last good
    // certificate keeps being served.
    std::fs::write(&spec.key, "-----BEGIN PRIVATE KEY-----\ngarbage").unwrap();
    let err = tls.reload().unwrap_err();
    assert_names(&err, &spec.key);
    std::fs::write(&spec.cert, old.cert_pem.as_bytes()).unwrap(); // now mismatched with the key file
    let err = tls.reload().unwrap_err();
    assert_names(&err, &spec.key);
    let after = std_connect(server.addr, &client, "a.test").unwrap();
    assert!(
        std_server_cert(&after) == new.der,
        "a failed reload changed the certificate"
    );
    server.next().unwrap();
    std_close(after);
}

#[test]
fn server_tls_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ServerTls>();
    assert_send_sync::<TlsError>();
}
