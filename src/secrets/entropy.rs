//! Heuristics that tell a secret value from code, prose and placeholders:
//! secret-sounding names, Shannon entropy, UUID shape, placeholder words.
//!
//! They err on the side of "not a secret" for values that look like code
//! (`os.environ`, `self.key`), templates (`${X}`, `<token>`) or
//! low-entropy words, because a redacted line of ordinary code breaks the
//! agent's work; real credentials are random and long.

/// Words in a name that make its value a credential.
const NAME_WORDS: &[&str] = &[
    "token",
    "secret",
    "passw",
    "pwd",
    "passphrase",
    "apikey",
    "api_key",
    "credential",
    "private_key",
    "privatekey",
    "access_key",
    "accesskey",
    "auth",
    // git's `sendemail.smtppass` (git config keys are lowercase).
    "smtppass",
];

/// Name endings that describe a credential rather than hold one.
const NAME_META_SUFFIXES: &[&str] = &[
    "name", "names", "url", "uri", "path", "file", "dir", "endpoint", "type", "length", "len",
    "size", "count", "prefix", "env", "var", "ref", "header", "field", "id_field", "policy",
    "expiry", "expires", "ttl",
    // Counts and prices of LLM tokens (`max_tokens`, `input_token_cost`).
    "tokens", "limit", "cost", "budget", "usage",
];

/// Substrings that mark a placeholder, not a real value.
const PLACEHOLDERS: &[&str] = &[
    "xxx",
    // Counts anywhere (`AQoDYXdzEE0a8ANXXXXXXXXNO1ew`): `xxx` not.
    "xxxx",
    "changeme",
    "change_me",
    "change-me",
    "example",
    "placeholder",
    "your_",
    "your-",
    "yourtoken",
    "dummy",
    "redacted",
    "sample",
    "fake",
    "test",
    "todo",
    "fixme",
    "insert",
    "replace",
    "secret",
    "password",
    "passwd",
    "token",
    "notreal",
    "not-real",
    "foobar",
    "lorem",
    "abc123",
    "123456",
    "abcdef",
    "***",
    "...",
];

/// Is `name` (an identifier, key or variable name) secret-sounding?
pub fn secret_name(name: &[u8]) -> bool {
    // Lower-cased, `-` and `.` as `_`, on the stack (names are short).
    let mut buf = [0u8; 96];
    if name.len() > buf.len() {
        return false;
    }
    for (d, b) in buf.iter_mut().zip(name) {
        *d = match b.to_ascii_lowercase() {
            b'-' | b'.' => b'_',
            c => c,
        };
    }
    let s = &buf[..name.len()];
    let has_word = NAME_WORDS.iter().any(|w| {
        let w = w.as_bytes();
        s.windows(w.len()).enumerate().any(|(at, win)| {
            // "auth" and "authorization", but not "author"/"authority".
            win == w && {
                let after = &s[at + w.len()..];
                w != b"auth"
                    || !after.starts_with(b"or")
                    || after.starts_with(b"oriz")
                    || after.starts_with(b"oris")
            }
        })
    });
    if !has_word && !word_pass(name) && !word_key(name) && !word_session(name) {
        return false;
    }
    // The last word, after a `_` or a camelCase capital (`secretName`,
    // `apiKeyHeader`), says what the name describes.
    let last = s.rsplit(|&b| b == b'_').next().unwrap_or(b"");
    let last_word = words(name).last().unwrap_or(b"");
    !NAME_META_SUFFIXES
        .iter()
        .any(|m| m.as_bytes() == last || m.as_bytes().eq_ignore_ascii_case(last_word))
        && !words(name).any(|w| REFERENCE_WORDS.iter().any(|r| w.eq_ignore_ascii_case(r)))
}

/// Words that make a name a reference to a secret kept elsewhere, not the
/// secret (a Kubernetes `secretKeyRef` and its `secretKeyRef.key`, the key
/// in that Secret; `password_ref`).
const REFERENCE_WORDS: &[&[u8]] = &[b"ref", b"refs", b"reference"];

/// The words of a name: split at every character that is not a letter or
/// a digit, and before a capital that follows a lowercase letter or a
/// digit (camelCase: `smtpPass`, `masterKey`).
fn words(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    name.split(|b| !b.is_ascii_alphanumeric()).flat_map(|part| {
        let mut start = 0;
        (1..=part.len()).filter_map(move |i| {
            let boundary = i == part.len()
                || (part[i].is_ascii_uppercase()
                    && (part[i - 1].is_ascii_lowercase() || part[i - 1].is_ascii_digit()));
            boundary.then(|| {
                let w = &part[start..i];
                start = i;
                w
            })
        })
    })
}

/// Words before a final `key` that make it the key of a record, a map or
/// a cache, or a public key, not a credential (`PRIMARY_KEY`, `cacheKey`,
/// `GPG_KEY`: a fingerprint; `idempotency_key`: a random id, not a secret).
const KEY_QUALIFIERS: &[&[u8]] = &[
    b"primary",
    b"foreign",
    b"sort",
    b"partition",
    b"range",
    b"shard",
    b"routing",
    b"cache",
    b"hash",
    b"lookup",
    b"map",
    b"dict",
    b"index",
    b"row",
    b"unique",
    b"composite",
    b"object",
    b"s3",
    b"file",
    b"storage",
    b"state",
    b"query",
    b"idempotency",
    b"dedup",
    b"lock",
    b"public",
    b"publishable",
    b"site",
    b"gpg",
    b"pgp",
    b"i18n",
    b"translation",
    b"message",
    b"react",
    // Keys of code, as camelCase names give them (`sortingKey`,
    // `entityKey`, `queryKey`, a DOM event's `ctrlKey`, `labelKey`,
    // `nextKey`).
    b"sorting",
    b"entity",
    b"record",
    b"item",
    b"node",
    b"column",
    b"group",
    b"event",
    b"route",
    b"shortcut",
    b"hot",
    b"modifier",
    b"meta",
    b"ctrl",
    b"shift",
    b"alt",
    b"parent",
    b"child",
    b"label",
    b"field",
    b"prop",
    b"context",
    b"injection",
    b"resource",
    b"bundle",
    b"locale",
    b"title",
    b"table",
    b"list",
    b"page",
    b"component",
    b"mutation",
    b"next",
    b"prev",
    b"first",
    b"last",
    b"enum",
    b"alias",
    b"type",
    b"typed",
    b"size",
    b"memo",
    b"sub",
    b"header",
    b"dispatch",
    b"pool",
    b"mask",
    b"reg",
];

/// `key` as the last word of a name that has a word before it
/// (`STRIPE_KEY`, `encryption-key`, `masterKey`, `HMAC_KEY`): what the
/// environment rules call a secret (`*_KEY`), unless that word makes it
/// the key of a record or a public key (see [`KEY_QUALIFIERS`]). `key`
/// alone names any map's keys.
fn word_key(name: &[u8]) -> bool {
    let (mut before, mut last): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    for w in words(name) {
        before = last;
        last = Some(w);
    }
    match (before, last) {
        (Some(before), Some(last)) if last.eq_ignore_ascii_case(b"key") => !KEY_QUALIFIERS
            .iter()
            .any(|q| before.eq_ignore_ascii_case(q)),
        _ => false,
    }
}

/// `pass` as a whole word of the name (`DB_PASS`, `smtpPass`, rclone's
/// `pass`): a piece of many other words (`bypass`, `compass`, `passenger`,
/// `passive`), it only counts on its own. So does `salt` (WordPress's
/// `NONCE_SALT`, a hashing salt: secret as a key is; not `basalt`).
fn word_pass(name: &[u8]) -> bool {
    words(name).any(|w| w.eq_ignore_ascii_case(b"pass") || w.eq_ignore_ascii_case(b"salt"))
}

/// A session cookie's name (`_app_session`, `JSESSIONID`, `PHPSESSID`,
/// Express's `connect.sid`), as a whole word: the cookie is a login. Not
/// `sid` alone (a Windows SID, Twilio's account SID, `ORACLE_SID`).
fn word_session(name: &[u8]) -> bool {
    const SESSION: &[&[u8]] = &[b"sessionid", b"jsessionid", b"sessid", b"phpsessid"];
    // `session` as the last word only: Rails' `_app_session`, not AWS's
    // `SessionId` or `session_count`.
    name.eq_ignore_ascii_case(b"connect.sid")
        || words(name)
            .last()
            .is_some_and(|w| w.eq_ignore_ascii_case(b"session"))
        || words(name).any(|w| SESSION.iter().any(|n| w.eq_ignore_ascii_case(n)))
}

/// Whether `name` is secret-sounding only for naming a session cookie.
/// Session ids are long (PHP's 26 characters and more); a short value is
/// a number or a test's (`?session=8912ae912fec` in a saved page).
fn only_session(name: &[u8]) -> bool {
    word_session(name) && {
        let lower = name.to_ascii_lowercase();
        !NAME_WORDS
            .iter()
            .any(|w| lower.windows(w.len()).any(|x| x == w.as_bytes()))
            && !word_pass(name)
            && !word_key(name)
    }
}

/// How much of `value` is a secret assigned to `name`, if it is one. A
/// colon ending the value opens a block (`elif x.method == Auth.NONE:`),
/// and a value that spells its own name is an enum constant
/// (`OAUTH2_ID_JAG: "oauth2_id_jag"`).
pub fn assigned_secret(name: &[u8], value: &[u8]) -> Option<usize> {
    let mut len = value.len();
    while len > 0 && value[len - 1] == b':' {
        len -= 1;
    }
    let v = &value[..len];
    // `r.featuresKey="@babel/…/featuresKey"`: the name's last part spells.
    let last = name
        .rsplit(|&b| b == b'.')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or(name);
    let long_enough = v.len() >= 20 || !only_session(name);
    (secret_name(name) && long_enough && plausible_secret(v) && !spells_name(last, v))
        .then_some(len)
}

/// `value` names the same thing as `name` (case, `-`, `.` and `_` aside).
fn spells_name(name: &[u8], value: &[u8]) -> bool {
    let norm = |s: &[u8]| -> Vec<u8> {
        s.iter()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(u8::to_ascii_lowercase)
            .collect()
    };
    let (n, v) = (norm(name), norm(value));
    v.len() >= 6 && (n.windows(v.len()).any(|w| w == v) || v.windows(n.len()).any(|w| w == n))
}

/// Code, not a literal: a comparison, a conditional or arithmetic
/// (`x.type===A.OAUTH2?B:C`, `520+41*n`, `e.auth??!0`), as minified
/// JavaScript is full of.
fn is_expression(v: &[u8]) -> bool {
    const OPS: &[&[u8]] = &[b"==", b"!=", b"??", b"?.", b"=>", b"&&", b"||"];
    // Base64 padding (`...c2VjcmV0==`) is part of a value, not a comparison;
    // more than two is one (`e.crossOrigin===`).
    let mut body = v;
    let mut padding = 0;
    while let Some(rest) = body.strip_suffix(b"=") {
        body = rest;
        padding += 1;
    }
    if padding > 2 || OPS.iter().any(|op| contains(body, op)) || is_arithmetic(v) {
        return true;
    }
    // Minified code: a chained assignment (`e.HEX=e.URL_CHAR=…`,
    // `this.lastTokStartLoc=null`), an increment (`++this._bytesVal`), a
    // condition before its `?` (`S.supportsImmutableAssets?`).
    if v.iter()
        .position(|&b| b == b'=')
        .is_some_and(|at| at > 0 && is_code_path(&v[..at]))
        || v.starts_with(b"++")
        || v.starts_with(b"--")
        || v.strip_suffix(b"?").is_some_and(is_code_path)
        // `didSchedule=!0`, `domEventName+"__bubble"`.
        || contains(v, b"=!")
        || v.strip_suffix(b"+").is_some_and(looks_like_identifier)
    {
        return true;
    }
    // A ternary: `?` with a `:` after it.
    v.iter()
        .position(|&b| b == b'?')
        .is_some_and(|q| v[q..].contains(&b':') && !contains(v, b"://"))
}

/// `520+41*n`: numbers and short names joined by operators, at least one
/// a number. A password with a `*` in it (`Xk9*mP2!qR`) is not.
fn is_arithmetic(v: &[u8]) -> bool {
    let parts: Vec<&[u8]> = v
        .split(|b| matches!(b, b'+' | b'*' | b'/' | b'-'))
        .collect();
    let number = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
    let name = |p: &[u8]| {
        !p.is_empty()
            && p.len() <= 12
            && (p[0].is_ascii_alphabetic() || p[0] == b'_')
            && p.iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
    };
    parts.len() > 1
        && v.iter().any(|b| matches!(b, b'+' | b'*'))
        && parts.iter().all(|p| number(p) || name(p))
        && parts.iter().any(|p| number(p))
}

/// Shannon entropy in bits per byte.
pub fn entropy(v: &[u8]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in v {
        counts[b as usize] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// 8-4-4-4-12 hex digits.
pub fn is_uuid(v: &[u8]) -> bool {
    v.len() == 36
        && v.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A placeholder word in `v`. A short one (`xxx`, `test`) counts only at
/// the value's start or end or next to punctuation (`sk-xxxx`,
/// `my_test_key`): a random token holds one now and then
/// (`…Z9n9CxxX91…`), and a value crafted to contain one would otherwise
/// pass for a placeholder.
fn has_placeholder(v: &[u8]) -> bool {
    let lower = v.to_ascii_lowercase();
    PLACEHOLDERS.iter().any(|p| {
        let p = p.as_bytes();
        let short = p.len() <= 4 && p.iter().all(u8::is_ascii_alphabetic) && p != b"xxxx";
        let inside = |at: usize| {
            at > 0
                && lower[at - 1].is_ascii_alphanumeric()
                && lower
                    .get(at + p.len())
                    .is_some_and(u8::is_ascii_alphanumeric)
        };
        lower
            .windows(p.len())
            .enumerate()
            .any(|(at, w)| w == p && !(short && inside(at)))
    })
}

/// A decimal number, maybe with a fraction and an exponent
/// (`"input_cost_per_token": 5.46875e-07`): a setting, not a secret.
fn is_number(v: &[u8]) -> bool {
    let v = v.strip_prefix(b"-").unwrap_or(v);
    // A typed literal (`251658240i32`, `49187u32`): generated bindings are
    // full of them, next to names like `PrivateKeyClientVersionMask`.
    const SUFFIXES: &[&[u8]] = &[
        b"i8", b"i16", b"i32", b"i64", b"i128", b"isize", b"u8", b"u16", b"u32", b"u64", b"u128",
        b"usize", b"f32", b"f64",
    ];
    let v = SUFFIXES
        .iter()
        .find_map(|s| v.strip_suffix(*s))
        .filter(|d| d.last().is_some_and(u8::is_ascii_digit))
        .unwrap_or(v);
    let (mantissa, exponent) = match v.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let mantissa_ok = match mantissa.iter().position(|&b| b == b'.') {
        Some(i) => {
            let (a, b) = (&mantissa[..i], &mantissa[i + 1..]);
            (digits(a) || a.is_empty())
                && (digits(b) || b.is_empty())
                && !(a.is_empty() && b.is_empty())
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e
            .strip_prefix(b"-")
            .or_else(|| e.strip_prefix(b"+"))
            .unwrap_or(e);
        digits(e)
    });
    mantissa_ok && exponent_ok
}

/// `a.b.c` or `a::b`: a reference to something in code, not a literal.
fn is_code_path(v: &[u8]) -> bool {
    let ident = |part: &[u8]| {
        !part.is_empty()
            && (part[0].is_ascii_alphabetic() || part[0] == b'_')
            && part.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    let number = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    let by_dot = v.split(|&b| b == b'.').collect::<Vec<_>>();
    if by_dot.len() > 1
        && by_dot.iter().all(|p| ident(p) || number(p))
        && by_dot.iter().any(|p| ident(p))
    {
        return true;
    }
    let s = String::from_utf8_lossy(v);
    let by_colons: Vec<&str> = s.split("::").collect();
    by_colons.len() > 1 && by_colons.iter().all(|p| ident(p.as_bytes()))
}

/// `api_key_from_settings_v2`, `X509CertificateTemplateFlag`,
/// `MI_UserCredentials_0`: words (lowercase, Capitalized or ACRONYM runs)
/// and a few numbers are names of things, not random values. A random token
/// splits into many one- and two-letter runs (at most a tenth of a name's
/// letters may be in such runs).
fn looks_like_identifier(v: &[u8]) -> bool {
    // JavaScript's `$` (`__reactFiber$`) and a sigil before a name
    // (`?NoLineTerminatorHere`, `#private`) are part of names too.
    let v = v
        .strip_prefix(b"?")
        .or_else(|| v.strip_prefix(b"#"))
        .unwrap_or(v);
    if !v
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$'))
    {
        return false;
    }
    let (mut letters, mut noise, mut numbers) = (0usize, 0usize, 0usize);
    let mut consonant_runs = 0usize;
    // Names with words of two letters (`nextBraceIsClass`) or one acronym
    // (`VpcEndpoints`) have no digit; random tokens mostly have some, and
    // with them read as nothing but noise (`6bRJZ876KdfqrXMZSHNU`,
    // `wjhwea8DoXonHT5E3iet` are passwords).
    let wordy = !v.iter().any(u8::is_ascii_digit);
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        let start = i;
        if c.is_ascii_digit() {
            while i < v.len() && v[i].is_ascii_digit() {
                i += 1;
            }
            numbers += 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        if c.is_ascii_uppercase() {
            while i < v.len() && v[i].is_ascii_uppercase() {
                i += 1;
            }
            // "XMLHttp": the last capital starts the next word.
            if i < v.len() && v[i].is_ascii_lowercase() && i - start > 1 {
                i -= 1;
            } else {
                while i < v.len() && v[i].is_ascii_lowercase() {
                    i += 1;
                }
            }
        } else {
            while i < v.len() && v[i].is_ascii_lowercase() {
                i += 1;
            }
        }
        let run = i - start;
        letters += run;
        // One- and two-letter runs are noise, except acronyms ("MI_"),
        // two-letter words (`nextBraceIsClass`, `pathToRegexp`) and a
        // unit after a number that ends a word ("detailed_5m", "v2_1h").
        // A two-letter word starts the name or a part of it (`isFile`,
        // `_toBlock`) or is capitalized in it (`nextBraceIsClass`).
        let word_start = start == 0 || !v[start - 1].is_ascii_alphabetic();
        let acronym = run == 2
            && (v[start..i].iter().all(u8::is_ascii_uppercase)
                || (wordy
                    && (word_start || v[start].is_ascii_uppercase())
                    && TWO_LETTER_WORDS
                        .iter()
                        .any(|w| v[start..i].eq_ignore_ascii_case(w))));
        let unit = start > 0
            && v[start - 1].is_ascii_digit()
            && v.get(i).is_none_or(|b| !b.is_ascii_alphanumeric());
        // A word has a vowel: a capitalized run of three or more letters
        // without one (`Cnm`; not an acronym, `HTTP`) is random. (Lowercase
        // ones are left to the other tests: keyboard mashes in docs,
        // `lkjsdf`, are example values.)
        let consonants = run >= 3
            && v[start].is_ascii_uppercase()
            && !v[start..i].iter().all(u8::is_ascii_uppercase)
            && !v[start..i].iter().any(|b| {
                matches!(
                    b.to_ascii_lowercase(),
                    b'a' | b'e' | b'i' | b'o' | b'u' | b'y'
                )
            });
        // One such run is a capitalized acronym (`VpcEndpoints`,
        // `SqlServer`); a second makes the value random.
        consonant_runs += usize::from(consonants);
        if (run <= 2 && !acronym && !unit) || (consonants && (consonant_runs > 1 || !wordy)) {
            noise += run;
        }
    }
    letters >= 6 && noise * 10 <= letters && numbers <= 3
}

/// Two-letter words of camelCase names, each capitalized inside one
/// (`nextBraceIsClass`, `valueOrDefault`).
const TWO_LETTER_WORDS: &[&[u8]] = &[
    b"is", b"to", b"by", b"of", b"on", b"in", b"at", b"or", b"as", b"if", b"no", b"up", b"do",
    b"be", b"an", b"it", b"id", b"my", b"we", b"go",
    // and abbreviations (`getStaleTimeMs`, `tsParseModifier`, `skipSpaceRe`)
    b"ms", b"ts", b"re", b"js", b"fs", b"os", b"io", b"ui", b"db", b"ok", b"fn", b"cb", b"el",
    b"ip", b"vm", b"ws",
];

/// Is `v`, assigned to a secret-sounding name, a real secret?
pub fn plausible_secret(v: &[u8]) -> bool {
    if is_uuid(v) {
        return true;
    }
    if v.len() < 8 || v.len() > 4096 {
        return false;
    }
    if v.starts_with(b"/")
        || v.starts_with(b"./")
        || v.starts_with(b"~")
        // Code punctuation (a quote taken for a value's start), and an npm
        // package's scoped name (`@babel/plugin-x`).
        || v.first().is_some_and(|b| matches!(b, b',' | b';' | b')' | b']' | b'}'))
        || (v.starts_with(b"@") && v.contains(&b'/'))
        || contains(v, b"://")
        || contains(v, b"::")
    {
        return false;
    }
    let digit = v.iter().any(u8::is_ascii_digit);
    let lower = v.iter().any(u8::is_ascii_lowercase);
    let upper = v.iter().any(u8::is_ascii_uppercase);
    let other = v.iter().any(|b| !b.is_ascii_alphanumeric());
    // Random tokens of 8+ characters almost always hold a digit; names of
    // things in code (`__IncompleteArrayField`, `AuthConfig`) do not. But
    // one in 16 random 16-character passwords of letters and digits has
    // none: mixed case from 12 characters on is enough, when the value
    // does not read as words (`looks_like_identifier`, below).
    let classes = [digit, lower, upper, other].iter().filter(|&&c| c).count();
    if !(lower || upper) || classes < 2 || !(digit || (lower && upper && v.len() >= 12)) {
        return false;
    }
    if has_placeholder(v)
        || is_code_path(v)
        || looks_like_identifier(v)
        || is_number(v)
        || is_expression(v)
    {
        return false;
    }
    let e = entropy(v);
    if v.len() < 16 { e >= 2.9 } else { e >= 3.2 }
}

/// The body of a well-known prefix format (`sk-…`, `hf_…`) must look random:
/// mixed letters and digits, no long words joined by dashes.
pub fn plausible_token(v: &[u8]) -> bool {
    let digits = v.iter().filter(|b| b.is_ascii_digit()).count();
    let upper = v.iter().any(u8::is_ascii_uppercase);
    let lower = v.iter().any(u8::is_ascii_lowercase);
    digits >= 2 && upper && lower && entropy(v) >= 3.5 && !has_placeholder(v)
}

/// A URI's password part, unless it is a placeholder or a template.
pub fn uri_password(v: &[u8]) -> bool {
    let templated = v
        .iter()
        .any(|b| matches!(b, b'$' | b'{' | b'}' | b'<' | b'>' | b'%' | b'*'));
    let placeholder = matches!(
        v.to_ascii_lowercase().as_slice(),
        b"pass"
            | b"password"
            | b"passwd"
            | b"pwd"
            | b"secret"
            | b"changeme"
            | b"x"
            | b"xxx"
            | b"xxxx"
    ) || has_placeholder(v);
    !v.is_empty() && !templated && !placeholder
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for n in [
            "RAILWAY_TOKEN",
            "api_key",
            "apiKey",
            "client-secret",
            "DB_PASSWORD",
            "_authToken",
            "oauth_token",
            "x.private_key",
            "DB_PASS",
            "pass",
            "smtpPass",
            "mysql-pass",
            "PASS_DB",
            "db__pass",
            "STRIPE_KEY",
            "ENCRYPTION_KEY",
            "signing-key",
            "masterKey",
            "app.jwt.signing-key",
            "HMAC_KEY",
            "license_key",
            "stripeKey",
            "encryptionKey",
            "awsSecretKey",
        ] {
            assert!(secret_name(n.as_bytes()), "{n}");
        }
        for n in [
            "author",
            "authority",
            "TOKEN_URL",
            "secret_name",
            "password_file",
            "tokenizer_path",
            "name",
            "id",
            "bypass",
            "compass_heading",
            "passenger",
            "passive_mode",
            "PASS_URL",
            "a__b",
            "_-_",
            "key",
            "KEY",
            "monkey",
            "keyboard",
            "PRIMARY_KEY",
            "cacheKey",
            "GPG_KEY",
            "idempotency_key",
            "public-key",
            "SITE_KEY",
            "key_id",
            "STRIPE_KEY_NAME",
            "secretKeyRef",
            "secretKeyRef.key",
            "password_ref",
            "secretName",
            "apiKeyHeader",
            "maxTokens",
            "publicKey",
            "translationKey",
            "ctrlKey",
        ] {
            assert!(!secret_name(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn values() {
        assert!(plausible_secret(b"6f1c2a9e-3b7d-4e8a-9c0f-1d2e3f4a5b6c"));
        assert!(plausible_secret(b"Qm9vTGx2NXJ4c0t3ZmQ3"));
        assert!(plausible_secret(b"9f86d081884c7d659a2feaa0c55ad015"));
        assert!(plausible_secret(b"dop_v1_9f86d081884c7d659a2feaa0c55ad015"));
        assert!(plausible_secret(b"Zq8vL2mN4pQ6"));
        assert!(plausible_secret(b"CANARYyml21165x371893c59"));
        // Random, with few digits or none (review 22).
        assert!(plausible_secret(b"9uknf4PCnmFnDraalEFMCmwLFEBWneji"));
        assert!(plausible_secret(b"qTzRkWbNvHsLpXcM"));
        for v in [
            "changeme",
            "os.environ",
            "self.config.api_key",
            "std::env::var",
            "hunter2",
            "CorrectHorseBatteryStaple",
            "/run/secrets/x1",
            "https://a.b/c1",
            "aaaaaaaa1",
            "your-api-key-1",
            "X509CertificateTemplatePrivateKeyFlag",
            "MI_UserCredentials_0",
            "NDIS_802_11_AUTHENTICATION_MODE",
            "api_key_from_settings_v2",
            "self.0.clone",
            "251658240i32",
            "-2147483648i32",
            "49187u32",
            "__IncompleteArrayField",
        ] {
            assert!(!plausible_secret(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn entropy_bounds() {
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert!(is_uuid(b"6f1c2a9e-3b7d-4e8a-9c0f-1d2e3f4a5b6c"));
        assert!(!is_uuid(b"6f1c2a9e-3b7d-4e8a-9c0f-1d2e3f4a5b6"));
    }
}
