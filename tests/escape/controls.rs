//! Positive controls: the ordinary work an agent does must keep working
//! (a sandbox that blocks everything would pass every attack above).

use crate::support::{Expect, each_mode};

/// Edit, create, rename and delete project files; the host sees the result.
#[test]
fn project_files_edit_and_create() {
    each_mode(|case| {
        case.write("notes.txt", "one\n");
        case.write("old.txt", "old\n");
        case.write("gone.txt", "x\n");
        let out = case.sh(
            "echo two >> notes.txt && mkdir -p src/deep && echo 'fn main() {}' > src/deep/main.rs \
             && mv old.txt new.txt && rm gone.txt && chmod +x src/deep/main.rs && echo ran=1",
        );
        out.ran().expect_code(0);
        let p = case.project();
        assert_eq!(
            std::fs::read_to_string(p.join("notes.txt")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(
            std::fs::read_to_string(p.join("src/deep/main.rs")).unwrap(),
            "fn main() {}\n"
        );
        assert!(
            p.join("new.txt").exists()
                && !p.join("old.txt").exists()
                && !p.join("gone.txt").exists()
        );
        let owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(p.join("src/deep/main.rs")).unwrap(),
        );
        assert_eq!(
            owner,
            case.sandbox_uid(),
            "new files must belong to the user on the host"
        );
    });
}

#[test]
fn git_init_add_commit() {
    each_mode(|case| {
        case.write("README.md", "# demo\n");
        let out = case.sh(r#"
set -e
git init -q
git -c user.name=t -c user.email=t@example.com add README.md
git -c user.name=t -c user.email=t@example.com commit -q -m first
echo "commits=$(git rev-list --count HEAD)"
echo "clean=$(git status --porcelain | wc -l)"
echo ran=1
"#);
        out.ran()
            .fields(&[("commits", "1"), ("clean", "0")])
            .expect_code(0);
        assert!(
            case.project().join(".git/HEAD").exists(),
            "the repository is not on the host"
        );
    });
}

#[test]
fn python3_runs() {
    each_mode(|case| {
        case.sh(r#"python3 -c '
import json, sqlite3, subprocess, tempfile
db = sqlite3.connect(tempfile.mktemp(dir="/tmp"))
db.execute("create table t (x)")
db.execute("insert into t values (42)")
print("sum=%d" % sum(range(10)))
print("sqlite=%d" % db.execute("select x from t").fetchone()[0])
print("json=" + json.dumps([1]))
print("sub=" + subprocess.run(["echo", "ok"], capture_output=True, text=True).stdout.strip())
print("ran=1")
'"#)
            .ran()
            .fields(&[
                ("sum", "45"),
                ("sqlite", "42"),
                ("json", "[1]"),
                ("sub", "ok"),
            ])
            .expect_code(0);
    });
}

#[test]
fn cc_compile_and_run() {
    each_mode(|case| {
        case.write(
            "hello.c",
            "#include <stdio.h>\n#include <pthread.h>\nstatic void *f(void *a) { return a; }\n\
             int main(void) { pthread_t t; void *r; pthread_create(&t, 0, f, (void *)7); pthread_join(t, &r);\n\
             printf(\"hello=%ld\\n\", (long)r); return 0; }\n",
        );
        case.sh("cc -O2 -pthread -o hello hello.c && ./hello && echo ran=1")
            .ran()
            .fields(&[("hello", "7")])
            .expect_code(0);
        assert!(case.project().join("hello").exists());
    });
}

#[test]
fn pipelines() {
    each_mode(|case| {
        case.sh(r#"
echo "top=$(seq 1 1000 | sort -rn | head -3 | tr '\n' ,)"
echo "lines=$(yes | head -n 100000 | wc -l)"
echo "words=$(printf 'a b\nc\n' | awk '{ n += NF } END { print n }')"
echo ran=1
"#)
            .ran()
            .fields(&[
                ("top", "1000,999,998,"),
                ("lines", "100000"),
                ("words", "3"),
            ])
            .expect_code(0);
    });
}

#[test]
fn tmp_use() {
    each_mode(|case| {
        case.sh(r#"
set -e
f=$(mktemp) && echo data > "$f" && echo "tmp=$(cat "$f")"
d=$(mktemp -d /var/tmp/x.XXXX) && touch "$d/y" && echo "vartmp=$(ls "$d")"
echo shm > /dev/shm/s && echo "shm=$(cat /dev/shm/s)"
mkfifo /tmp/fifo && (echo piped > /tmp/fifo &) && echo "fifo=$(cat /tmp/fifo)"
echo ran=1
"#)
            .ran()
            .fields(&[
                ("tmp", "data"),
                ("vartmp", "y"),
                ("shm", "shm"),
                ("fifo", "piped"),
            ])
            .expect_code(0);
    });
}

/// `ls /` and `find / -xdev` work (no permission errors), and show the
/// skeleton guard built.
#[test]
fn ls_root_and_find_xdev() {
    each_mode(|case| {
        let out = case.sh(r#"
echo "ls=$(ls / | tr '\n' ,)"
find / -xdev > /tmp/found
echo "find_status=$?"
echo "found=$(wc -l < /tmp/found)"
find /usr/bin -maxdepth 1 -name sh > /dev/null
echo "find_usr=$?"
echo ran=1
"#);
        out.ran()
            .fields(&[("find_status", "0"), ("find_usr", "0")])
            .expect_code(0);
        let ls = out.get("ls");
        for d in ["dev", "etc", "proc", "tmp", "usr"] {
            assert!(ls.split(',').any(|e| e == d), "{d} missing from ls /: {ls}");
        }
        assert!(
            out.get("found").parse::<u32>().unwrap() >= 5,
            "{}",
            out.all()
        );
        assert!(
            out.stderr.is_empty(),
            "errors from ls/find:\n{}",
            out.stderr
        );
    });
}
