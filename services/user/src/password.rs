//! Password hashing with argon2id at OWASP's recommended cost (19 MiB, 2 passes, 1 lane).
//! Hashing is CPU-bound, so it runs on dedicated threads rather than an async worker.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, LazyLock, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Verified against when the email is unknown, so both answers take the same time.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("not-a-real-password").expect("hashing a constant works"));

thread_local! {
    /// This hashing thread's argon2 memory (19 MiB), reused by every hash it computes. Letting
    /// the crate allocate and free it per hash left glibc arenas holding hundreds of MB after a
    /// burst of sign-ups; now it is one block per hashing thread, allocated once.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The raw argon2 output for `password` and `salt`, computed in this thread's memory.
fn compute(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> anyhow::Result<()> {
    MEMORY.with_borrow_mut(|blocks| {
        let needed = argon.params().block_count();
        if blocks.len() != needed {
            blocks.clear();
            blocks.resize(needed, Block::new());
            blocks.shrink_to_fit();
        }
        argon
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..])
            .map_err(|e| anyhow::anyhow!("{e}"))
    })
}

fn phc_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let argon = hasher();
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(&argon, password.as_bytes(), &salt, &mut out)?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(phc_error)?,
        salt: Some(Salt::new(&salt).map_err(phc_error)?),
        hash: Some(Output::new(&out).map_err(phc_error)?),
    }
    .to_string())
}

/// Recomputes with the hash's own algorithm, version and parameters; compares in constant time.
fn verify_blocking(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm.as_str()),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    compute(&argon, password.as_bytes(), salt.as_ref(), &mut out).is_ok()
        && Output::new(&out).is_ok_and(|computed| computed == *expected)
}

type Job = Box<dyn FnOnce() + Send>;

/// Which queue a hashing job waits in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Checking a password at sign-in: always served first.
    SignIn,
    /// Hashing a new password (registration, seeding): never on every thread at once, so a
    /// flood of registrations leaves a thread free for sign-ins.
    NewPassword,
}

#[derive(Default)]
struct Queues {
    sign_ins: VecDeque<Job>,
    new_passwords: VecDeque<Job>,
    new_passwords_running: usize,
}

/// Hashing runs on a fixed set of dedicated threads, one per core (at least two). More at once
/// would only queue on the CPU, and on tokio's ever-changing blocking threads each 19 MiB block
/// lands in another malloc arena that keeps it: 850 MB RSS was seen after a burst of
/// registrations. A fixed set of threads reuses the same few blocks.
struct Hashers {
    queues: Mutex<Queues>,
    work: Condvar,
    /// At most this many threads hash new passwords at once: all threads but one.
    max_new_passwords: usize,
}

static HASHERS: LazyLock<Arc<Hashers>> = LazyLock::new(|| {
    Hashers::start(std::thread::available_parallelism().map_or(2, |n| n.get().max(2)))
});

impl Hashers {
    /// `threads` (at least 2) hashing threads, all but one allowed to hash new passwords.
    fn start(threads: usize) -> Arc<Hashers> {
        let hashers = Arc::new(Hashers {
            queues: Mutex::new(Queues::default()),
            work: Condvar::new(),
            max_new_passwords: threads.max(2) - 1,
        });
        for i in 0..threads.max(2) {
            let hashers = hashers.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || hashers.run())
                .expect("starting a hashing thread");
        }
        hashers
    }

    fn run(&self) {
        loop {
            let (job, kind) = {
                let Ok(mut queues) = self.queues.lock() else {
                    return;
                };
                loop {
                    if let Some(job) = queues.sign_ins.pop_front() {
                        break (job, Kind::SignIn);
                    }
                    if queues.new_passwords_running < self.max_new_passwords
                        && let Some(job) = queues.new_passwords.pop_front()
                    {
                        queues.new_passwords_running += 1;
                        break (job, Kind::NewPassword);
                    }
                    queues = match self.work.wait(queues) {
                        Ok(queues) => queues,
                        Err(_) => return,
                    };
                }
            };
            job();
            if kind == Kind::NewPassword {
                if let Ok(mut queues) = self.queues.lock() {
                    queues.new_passwords_running -= 1;
                }
                // A thread waiting only because of the cap may take the next one now.
                self.work.notify_one();
            }
        }
    }

    fn push(&self, kind: Kind, job: Job) -> anyhow::Result<()> {
        let mut queues = self
            .queues
            .lock()
            .map_err(|_| anyhow::anyhow!("hashing threads stopped"))?;
        match kind {
            Kind::SignIn => queues.sign_ins.push_back(job),
            Kind::NewPassword => queues.new_passwords.push_back(job),
        }
        drop(queues);
        // Every waiting thread looks: the one woken might be unable to take a new password.
        self.work.notify_all();
        Ok(())
    }
}

async fn limited<T: Send + 'static>(
    kind: Kind,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    HASHERS.push(
        kind,
        Box::new(move || {
            let _ = done.send(work());
        }),
    )?;
    Ok(result.await?)
}

pub async fn hash(password: String) -> anyhow::Result<String> {
    limited(Kind::NewPassword, move || hash_blocking(&password)).await?
}

/// `None` hash: the account does not exist; still spends the same time, then answers false.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    limited(Kind::SignIn, move || match hash {
        Some(h) => verify_blocking(&password, &h),
        None => {
            let _ = verify_blocking(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_standard_phc_strings_and_verify() {
        let hash = hash_blocking("a-password-1").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_blocking("a-password-1", &hash));
        assert!(!verify_blocking("a-password-2", &hash));
        assert!(!verify_blocking("a-password-1", "not a hash"));
        // A hash made by the crate's own allocating API verifies here, and ours there.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let theirs = hasher().hash_password(b"a-password-1").unwrap().to_string();
        assert!(verify_blocking("a-password-1", &theirs));
        let ours = PasswordHash::new(&hash).unwrap();
        assert!(hasher().verify_password(b"a-password-1", &ours).is_ok());
        // Other parameters (cheaper) are read from the hash itself.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw-12345678")
        .unwrap()
        .to_string();
        assert!(verify_blocking("pw-12345678", &cheap));
        assert!(!verify_blocking("pw-12345679", &cheap));
    }

    /// New passwords that hold their threads (until the gate opens) never take the last one:
    /// a sign-in still runs. Deterministic: the held jobs cannot finish before it does.
    #[test]
    fn a_sign_in_runs_while_new_passwords_hold_every_other_thread() {
        let hashers = Hashers::start(2);
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (started, starts) = std::sync::mpsc::channel();
        for _ in 0..6 {
            let gate = gate.clone();
            let started = started.clone();
            let held: Job = Box::new(move || {
                started.send(()).unwrap();
                let (open, opened) = &*gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = opened.wait(open).unwrap();
                }
            });
            hashers.push(Kind::NewPassword, held).unwrap();
        }
        // One thread takes a new password; give the other time to take one too, if it could.
        starts
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            starts.try_recv().is_err(),
            "every hashing thread took a new password"
        );
        let (signed_in, sign_in_done) = std::sync::mpsc::channel();
        let sign_in: Job = Box::new(move || signed_in.send(()).unwrap());
        hashers.push(Kind::SignIn, sign_in).unwrap();
        let waited = sign_in_done.recv_timeout(std::time::Duration::from_secs(10));
        let (open, opened) = &*gate;
        *open.lock().unwrap() = true;
        opened.notify_all();
        assert!(
            waited.is_ok(),
            "the sign-in waited behind new passwords holding every thread"
        );
    }
}
