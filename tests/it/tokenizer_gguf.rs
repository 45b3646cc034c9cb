//! The tokenizer built from the default model's GGUF metadata must encode and decode exactly
//! like the model's own tokenizer.json (a copy lives in `tests/fixtures/smollm2-135m-instruct/`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::Content;
use depthkv::engine::chat::ChatTemplate;
use depthkv::engine::gguf_tokenizer::{special_tokens, tokenizer_from_gguf, SpecialTokens};
use tokenizers::Tokenizer;

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2-135m-instruct")
}

fn shared_file(name: &str) -> PathBuf {
    let path = shared_dir().join(name);
    assert!(path.is_file(), "reference file {} is missing from the repository's fixtures", path.display());
    path
}

struct Fixture {
    gguf: Tokenizer,
    reference: Tokenizer,
    special: SpecialTokens,
    chat_template: Option<String>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let reference = Tokenizer::from_file(shared_file("tokenizer.json")).expect("parse reference tokenizer.json");
        let path = depthkv::engine::fetch::ensure_default_model(&mut |m| eprintln!("{m}")).expect("default model GGUF");
        let mut file = std::fs::File::open(&path).expect("open GGUF");
        let content = Content::read(&mut file).expect("read GGUF metadata");
        let gguf = tokenizer_from_gguf(&content).expect("tokenizer from GGUF");
        let chat_template = content.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned();
        Fixture { gguf, reference, special: special_tokens(&content), chat_template }
    })
}

const SAMPLES: &[&str] = &[
    "",
    " ",
    "Hello, world!",
    "The capital of France is Paris.",
    // code with indentation, tabs, blank lines
    "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
    "def f(a, b=2):\n\tif a > b:\n\t\treturn a  # tab-indented\n\n\treturn b\n",
    "class Foo:\n    def __init__(self):\n        self.x = {'a': [1, 2, 3]}\n",
    "#include <stdio.h>\r\nint main(void) { return 0; }\r\n",
    // unicode
    "日本語のテキストと中文混合。한국어도 있어요.",
    "emoji 😀🎉👩‍👩‍👧‍👦 and flags 🇫🇷🇯🇵 and ❤️",
    "Café, naïve, façade, Ångström, Œuvre, straße, İstanbul",
    "e\u{301} vs \u{e9} (combining accent vs precomposed)",
    "مرحبا بالعالم — שלום עולם",
    "Ελληνικά, Русский текст, ไทย, हिन्दी",
    // whitespace runs and newlines
    "a  b   c    d\n\n\ne\t\tf \t \n g",
    "   leading and trailing   ",
    "\n\n\n",
    "line1\r\nline2\rline3\u{2028}line4\u{a0}nbsp",
    // digits and numbers
    "1234567890 3.14159 -42 1e-9 0xFF 1,000,000 ١٢٣ ½ ²",
    "Pi is 3.141592653589793238462643383279502884197169399375105820974944",
    // chat markup with special tokens
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|im_start|><|im_end|><repo_name>x<file_sep>y<filename>z<gh_stars>10",
    "<|im_start|>not closed <|im_end <|im_end|>|> <|unknown|>",
    // punctuation runs, contractions
    "!!!??? ... --- *** ((([[[{{{}}}]]]))) <<>> @#$%^&*_+=~`|\\/",
    "I'm sure you're right, they've said it'll be fine; we'd go. DON'T SHOUT, It's I'LL",
    "'s 't 're ' ve 'm''ll'd",
    "mixed123abc 4you 2nd 3rd 100% $5.00 #hashtag @user http://example.com/a?b=c&d=e",
];

pub fn ids(tok: &Tokenizer, text: &str, add_special: bool) -> Vec<u32> {
    tok.encode(text, add_special).unwrap_or_else(|e| panic!("encode {text:?}: {e}")).get_ids().to_vec()
}

/// A xorshift64 stream: the deterministic pseudo-random numbers of the random-input tests.
pub fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// `ours` decodes `ids` as `reference` does, keeping and skipping special tokens.
pub fn assert_same_decoding(ours: &Tokenizer, reference: &Tokenizer, ids: &[u32], label: &str) {
    for skip in [false, true] {
        let got = ours.decode(ids, skip).unwrap();
        let want = reference.decode(ids, skip).unwrap();
        assert_eq!(got, want, "{label}: decode of {ids:?} differs (skip_special_tokens = {skip})");
    }
}

/// `ours` encodes `text` as `reference` does, with and without special tokens, and decodes alike.
pub fn assert_encodes_alike(ours: &Tokenizer, reference: &Tokenizer, text: &str, label: &str) {
    for add_special in [false, true] {
        let want = ids(reference, text, add_special);
        assert_eq!(
            ids(ours, text, add_special),
            want,
            "{label}: ids differ for {text:?} (add_special = {add_special})"
        );
        assert_same_decoding(ours, reference, &want, label);
    }
}

/// Random id sequences of up to `max_len` ids (lone bytes, specials, pieces) decode alike.
pub fn assert_random_ids_decode_alike(
    ours: &Tokenizer,
    reference: &Tokenizer,
    rounds: usize,
    max_len: u64,
    label: &str,
) {
    let mut next = xorshift(0x2545_F491_4F6C_DD1D);
    let n = reference.get_vocab_size(true) as u64;
    for _ in 0..rounds {
        let len = (next() % max_len) as usize;
        let ids: Vec<u32> = (0..len).map(|_| (next() % n) as u32).collect();
        assert_same_decoding(ours, reference, &ids, label);
    }
}

/// Added tokens as (id, content, special), sorted.
pub fn added_tokens(t: &Tokenizer) -> Vec<(u32, String, bool)> {
    let mut v: Vec<(u32, String, bool)> =
        t.get_added_tokens_decoder().into_iter().map(|(id, tok)| (id, tok.content, tok.special)).collect();
    v.sort();
    v
}

fn assert_same_encoding(text: &str) {
    let f = fixture();
    assert_encodes_alike(&f.gguf, &f.reference, text, "smollm2");
}

#[test]
fn encodes_and_decodes_like_tokenizer_json() {
    for text in SAMPLES {
        assert_same_encoding(text);
    }
}

#[test]
fn byte_level_round_trip() {
    let f = fixture();
    for text in SAMPLES {
        let ids = ids(&f.gguf, text, false);
        assert_eq!(&f.gguf.decode(&ids, false).unwrap(), text);
    }
}

#[test]
fn special_tokens_are_single_ids_and_skippable() {
    let f = fixture();
    let text = "<|im_start|>user\nHi<|im_end|>\n";
    let got = ids(&f.gguf, text, false);
    assert_eq!(got.first(), Some(&1));
    assert!(got.contains(&2));
    assert_eq!(f.gguf.decode(&got, true).unwrap(), "user\nHi\n");
}

/// Deterministic pseudo-random strings over a pool that mixes every tricky class.
#[test]
fn random_strings_match() {
    const POOL: &[&str] = &[
        "a",
        "Z",
        "é",
        "ß",
        "中",
        "文",
        "😀",
        "👍🏽",
        "\u{301}",
        "0",
        "7",
        "٣",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "'",
        "'s",
        "'LL",
        "!",
        "?",
        ".",
        ",",
        "-",
        "_",
        "(",
        ")",
        "{",
        "}",
        "\"",
        "/",
        "\\",
        "<",
        ">",
        "|",
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "the",
        " the",
        "ing",
        "Hello",
        "\u{a0}",
        "\u{200b}",
        "ا",
        "ש",
    ];
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..500 {
        let len = (next() % 40) as usize;
        let text: String = (0..len).map(|_| POOL[(next() % POOL.len() as u64) as usize]).collect();
        assert_same_encoding(&text);
    }
}

/// Decoding arbitrary id sequences (partial UTF-8 bytes, specials) agrees too.
#[test]
fn random_id_sequences_decode_alike() {
    let f = fixture();
    assert_random_ids_decode_alike(&f.gguf, &f.reference, 300, 24, "smollm2");
}

#[test]
fn vocabulary_matches() {
    let f = fixture();
    assert_eq!(f.gguf.get_vocab_size(true), 49152);
    assert_eq!(f.gguf.get_vocab_size(false), 49152);
    assert_eq!(f.gguf.get_vocab(true), f.reference.get_vocab(true));
    assert_eq!(added_tokens(&f.gguf), added_tokens(&f.reference));
    assert_eq!(added_tokens(&f.gguf).len(), 17);
}

#[test]
fn bos_eos_match_config_json() {
    let f = fixture();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shared_file("config.json")).expect("read config.json"))
            .expect("parse config.json");
    let bos = config["bos_token_id"].as_u64().map(|v| v as u32);
    let eos = config["eos_token_id"].as_u64().map(|v| v as u32);
    assert_eq!((bos, eos), (Some(1), Some(2)));
    assert_eq!(f.special.bos, bos);
    assert_eq!(f.special.eos, eos);
    assert_eq!(f.special.stop_ids(), vec![2]);
    assert!(!f.special.add_bos && !f.special.add_eos);
    assert_eq!(f.gguf.id_to_token(1).as_deref(), Some("<|im_start|>"));
    assert_eq!(f.gguf.id_to_token(2).as_deref(), Some("<|im_end|>"));
}

#[test]
fn chat_template_from_gguf_matches_the_jinja_file() {
    let f = fixture();
    let jinja = std::fs::read_to_string(shared_file("chat_template.jinja")).expect("read jinja");
    assert_eq!(f.chat_template.as_deref(), Some(jinja.as_str()));
    let t = ChatTemplate::detect(f.chat_template.as_deref());
    assert_eq!(t, ChatTemplate::smollm2());
    let prompt = t.apply("What is the capital of France?");
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_same_encoding(&prompt);
}
