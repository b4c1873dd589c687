//! `PteModule::named_data`: zero-copy views of a program's named data entries, read through
//! ExecuTorch's own data loader (shim `dlx_module_named_data`), and `named_data_keys`, which
//! lists them from the Rust flatbuffer reader.
//!
//! Independent references: the checkpoint's `tokenizer.json`, which the exporter copied into
//! `sdar_embedded.pte` (tools/make_fixtures.py, `--embed-tokenizer`); `embedded_file`, which
//! reads the same entry by file offset with plain reads, without the runtime; and the keys
//! XNNPACK's serializer gives its weights, the SHA-256 hex of their bytes, checked here with
//! the `sha2` crate.
#![cfg(feature = "pte")]

use std::path::PathBuf;

use diffulex_edge::pte::{PteError, PteModule};
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn checkpoint_file(name: &str) -> Vec<u8> {
    let path = fixtures().join("ckpt/sdar").join(name);
    assert!(path.is_file(), "missing reference file {}", path.display());
    std::fs::read(path).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[test]
fn embedded_files_read_as_named_data_are_the_checkpoints() {
    let module = PteModule::load(fixtures().join("pte/sdar_embedded.pte")).unwrap();
    for name in ["tokenizer.json", "tokenizer_config.json"] {
        let want = checkpoint_file(name);
        let key = format!("diffulex/{name}");
        assert!(
            module.named_data_keys().any(|k| k == key),
            "{key} not listed"
        );
        let got = module.named_data(&key).unwrap().expect(&key);
        assert_eq!(got, want.as_slice(), "{key}");
        assert_eq!(module.embedded_file(name).unwrap().unwrap(), got, "{key}");
    }
}

/// On Linux the view of a file module lies inside a mapping of the program file itself
/// (`/proc/self/maps`): the bytes were not copied.
#[cfg(target_os = "linux")]
#[test]
fn a_file_modules_named_data_is_the_mapped_file() {
    let path = fixtures().join("pte/sdar_embedded.pte");
    let module = PteModule::load(&path).unwrap();
    let bytes = module
        .named_data("diffulex/tokenizer.json")
        .unwrap()
        .unwrap();
    let (start, end) = (
        bytes.as_ptr() as usize,
        bytes.as_ptr() as usize + bytes.len(),
    );
    let file = std::fs::canonicalize(&path).unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mapping = maps.lines().find(|line| {
        let mut fields = line.split_whitespace();
        let range = fields.next().unwrap_or_default();
        let Some((lo, hi)) = range.split_once('-') else {
            return false;
        };
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).unwrap(),
            usize::from_str_radix(hi, 16).unwrap(),
        );
        lo <= start && end <= hi
    });
    let mapping = mapping.unwrap_or_else(|| panic!("no mapping holds {start:#x}..{end:#x}"));
    assert!(
        mapping.ends_with(file.to_str().unwrap()),
        "the bytes are not in a mapping of {}: {mapping}",
        file.display()
    );
}

#[test]
fn absent_keys_are_none_and_a_nul_is_an_error() {
    let module = PteModule::load(fixtures().join("pte/sdar_embedded.pte")).unwrap();
    for key in ["diffulex/chat_template.jinja", "", "tokenizer.json"] {
        assert!(module.named_data(key).unwrap().is_none(), "{key:?}");
    }
    match module.named_data("diffulex/tokenizer.json\0") {
        Err(PteError::InvalidNamedDataKey { key }) => assert_eq!(key, "diffulex/tokenizer.json\0"),
        other => panic!("{other:?}"),
    }
    // A program without any named data.
    let plain = PteModule::load(fixtures().join("basic/mlp.pte")).unwrap();
    assert_eq!(plain.named_data_keys().count(), 0);
    assert!(plain
        .named_data("diffulex/tokenizer.json")
        .unwrap()
        .is_none());
}

#[test]
fn the_same_key_twice_gives_the_same_bytes_at_the_same_address() {
    let module = PteModule::load(fixtures().join("pte/sdar_embedded.pte")).unwrap();
    let first = module
        .named_data("diffulex/tokenizer.json")
        .unwrap()
        .unwrap();
    let other = module
        .named_data("diffulex/tokenizer_config.json")
        .unwrap()
        .unwrap();
    let again = module
        .named_data("diffulex/tokenizer.json")
        .unwrap()
        .unwrap();
    assert!(std::ptr::eq(first, again));
    assert!(!std::ptr::eq(first, other));
    // Every view stays valid while the module lives, whatever was loaded after it.
    assert_eq!(first, checkpoint_file("tokenizer.json").as_slice());
}

#[test]
fn a_module_loaded_from_bytes_gives_the_same_bytes() {
    let path = fixtures().join("pte/sdar_embedded.pte");
    let mapped = PteModule::load(&path).unwrap();
    let copy = PteModule::from_bytes(std::fs::read(&path).unwrap()).unwrap();
    let keys: Vec<&str> = mapped.named_data_keys().collect();
    assert_eq!(keys, copy.named_data_keys().collect::<Vec<_>>());
    assert!(!keys.is_empty());
    for key in keys {
        let (a, b) = (
            mapped.named_data(key).unwrap(),
            copy.named_data(key).unwrap(),
        );
        assert_eq!(a.unwrap(), b.unwrap(), "{key}");
    }
    assert_eq!(
        copy.named_data("diffulex/tokenizer.json").unwrap().unwrap(),
        checkpoint_file("tokenizer.json").as_slice()
    );
}

/// `sdar_cached.pte` has float weights; `sdar_cached_int8.pte` int8 ones with their per-channel
/// scales, under `scale_` and the SHA-256 hex of the scales' bytes.
#[test]
fn xnnpack_weights_are_keyed_by_the_sha256_of_their_bytes() {
    for (file, want_scales) in [("sdar_cached.pte", false), ("sdar_cached_int8.pte", true)] {
        let module = PteModule::load(fixtures().join("pte").join(file)).unwrap();
        let keys: Vec<&str> = module.named_data_keys().collect();
        let (mut weights, mut scales) = (0, 0);
        for key in &keys {
            let bytes = module
                .named_data(key)
                .unwrap()
                .unwrap_or_else(|| panic!("{file}: {key} listed, not found"));
            if is_sha256_hex(key) {
                assert_eq!(sha256_hex(bytes), *key, "{file}: weight {key}");
                weights += 1;
            } else if let Some(hash) = key.strip_prefix("scale_").filter(|h| is_sha256_hex(h)) {
                assert_eq!(sha256_hex(bytes), hash, "{file}: scale {key}");
                scales += 1;
            } else {
                panic!("{file}: unexpected named data key {key:?} (no embedded files here)");
            }
        }
        assert!(weights > 0, "{file}: no XNNPACK weight keys among {keys:?}");
        assert_eq!(scales > 0, want_scales, "{file}: {scales} scale keys");
        assert_eq!(weights + scales, keys.len(), "{file}");
    }
}
