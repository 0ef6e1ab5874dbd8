//! Sandboxed runner for Logto-compatible custom JWT claims scripts.
//!
//! Scripts run in QuickJS (through `rquickjs`) on a small pool of dedicated OS threads: a QuickJS
//! runtime is neither `Send` nor `Sync` without rquickjs' "parallel" feature, and keeping each
//! runtime pinned to one thread also keeps its stack-overflow check (which is relative to the stack
//! pointer seen when the runtime was created) meaningful.
//!
//! Each worker owns one runtime and one context in which the script has been evaluated once; calls
//! reuse it, as Logto does, so top-level script state (and anything put on `globalThis`) persists
//! between the calls one worker serves. A fresh context per call would isolate users from each
//! other but costs about 0.3 ms per call (context creation dominates), against about 0.04 ms this
//! way; see the `timing` test. The runtime and context are rebuilt after a timeout, memory
//! exhaustion or panic, which also resets that state.
//!
//! Limits:
//! * time: an interrupt handler compares a monotonic clock against a per-call deadline; QuickJS polls
//!   it from loops, calls and regular-expression matching, and the error it raises cannot be caught by
//!   the script. Between promise jobs the deadline is checked from Rust as well. QuickJS polls only
//!   every 10,000 steps and some native loops never poll, so built-ins are hardened before the
//!   script runs (see `HARDEN_SOURCE`), and a watchdog thread answers for workers stuck in a native
//!   operation anyway (see `watchdog_loop`).
//! * memory: `JS_SetMemoryLimit` on each worker's runtime; allocations beyond it fail inside QuickJS
//!   with an "out of memory" `InternalError` (or a thrown `null`), reported as
//!   [`ScriptError::OutOfMemory`].
//! * stack: `JS_SetMaxStackSize`; runaway recursion raises a `RangeError` ("Maximum call stack size
//!   exceeded") that is reported as [`ScriptError::Runtime`] like any other uncaught error.

use std::cell::RefCell;
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rquickjs::context::{EvalOptions, intrinsic};
use rquickjs::function::Opt;
use rquickjs::promise::PromiseState;
use rquickjs::{Coerced, Context, Ctx, Exception, Function, Object, Persistent, Runtime, Value};
use serde_json::{Map, Value as Json};
use tokio::sync::oneshot;

const FUNCTION_NAME: &str = "getCustomJwtClaims";
/// Evaluated after the script in the same context: top-level `const`/`let` bindings live in the
/// global lexical scope, not on `globalThis`, so only a second global script can see them.
const LOOKUP_SOURCE: &str = "typeof getCustomJwtClaims === 'undefined' ? undefined : getCustomJwtClaims";
const SCRIPT_FILE_NAME: &str = "custom-jwt-claims.js";
const INPUT_KEYS: [&str; 3] = ["token", "context", "environmentVariables"];
const DEFAULT_DENY_MESSAGE: &str = "Access denied";
const MUST_RETURN_OBJECT: &str = "The script must return an object";
const MUST_BE_SERIALIZABLE: &str = "The script return value must be JSON-serializable.";
const MAX_MESSAGE_CHARS: usize = 500;

/// Genuine arrays at most this long go straight to the native array methods below; anything else
/// is routed through interruptible paths. About 10 ms of unpolled native looping in the worst case
/// (sorting a sparse array of this length), measured in a release build.
const NATIVE_ARRAY_CAP: u32 = 1 << 16;

/// Runs once per context, before the user script, with native helpers (`isGenuineArray` is true for
/// real arrays, false for proxies and array-likes; `checkDeadline` throws once the call's deadline
/// has passed) and `NATIVE_ARRAY_CAP`. The helpers stay in its closures, out of the script's reach.
///
/// Some native methods of QuickJS loop up to an arbitrary `length` (up to 2^53 - 1, e.g. for
/// `Array(2**32 - 1).join('')` or `[].reverse.call({ length: 2**53 - 1 })`) without ever polling the
/// interrupt handler, which would pin a worker thread beyond any deadline. Receivers that are not
/// small genuine arrays are wrapped in a forwarding proxy: its traps are function calls, and QuickJS
/// polls the interrupt handler on calls. `concat`, `flat` and `flatMap` can reach unbounded lengths
/// through their arguments or elements too, so they fall back to (or are) plain JS loops, which are
/// polled. Everything captured here is taken before the user script can tamper with it, and property
/// descriptors have no prototype so a polluted `Object.prototype` cannot change their meaning.
const HARDEN_SOURCE: &str = r#"(function harden(isGenuineArray, cap, checkDeadline, isConstructor) {
  'use strict';
  const { apply, defineProperty, getOwnPropertyDescriptor, getPrototypeOf, ownKeys } = Reflect;
  const ObjectCtor = Object, TypeErrorCtor = TypeError, ProxyCtor = Proxy, StringCtor = String;
  const isArray = Array.isArray, trunc = Math.trunc, spreadable = Symbol.isConcatSpreadable;
  const ArrayProto = Array.prototype, nativeSlice = ArrayProto.slice, nativeConcat = ArrayProto.concat;
  const nativeRaw = StringCtor.raw;
  const MAX_LENGTH = 2 ** 53 - 1;
  const forwarding = {
    __proto__: null,
    get: Reflect.get, set: Reflect.set, has: Reflect.has, deleteProperty: Reflect.deleteProperty,
    defineProperty: Reflect.defineProperty, getOwnPropertyDescriptor: Reflect.getOwnPropertyDescriptor,
    ownKeys: Reflect.ownKeys, getPrototypeOf: Reflect.getPrototypeOf, setPrototypeOf: Reflect.setPrototypeOf,
    isExtensible: Reflect.isExtensible, preventExtensions: Reflect.preventExtensions,
  };
  const isObject = (v) => (typeof v === 'object' && v !== null) || typeof v === 'function';
  const isSmallArray = (v) => isGenuineArray(v) && v.length <= cap;
  const interruptible = (o) => (isSmallArray(o) ? o : new ProxyCtor(o, forwarding));
  const toObject = (v) => {
    if (v === null || v === undefined) throw new TypeErrorCtor('cannot convert undefined or null to object');
    return ObjectCtor(v);
  };
  const toIntegerOrInfinity = (v) => { const n = +v; return n !== n ? 0 : trunc(n); };
  const toLength = (v) => { const n = toIntegerOrInfinity(v); return n <= 0 ? 0 : n < MAX_LENGTH ? n : MAX_LENGTH; };
  const createDataProperty = (o, key, value) => {
    if (!defineProperty(o, key, { __proto__: null, value, writable: true, enumerable: true, configurable: true })) {
      throw new TypeErrorCtor('cannot define property ' + key);
    }
  };
  // ArraySpeciesCreate(o, 0), borrowed from the native slice, which copies nothing here.
  const speciesCreate = (o) => apply(nativeSlice, o, [0, 0]);
  const install = (target, name, method, length) => {
    defineProperty(method, 'length', { __proto__: null, value: length });
    defineProperty(target, name, { __proto__: null, value: method });
  };

  const receiverOnly = ['copyWithin', 'join', 'reverse', 'shift', 'slice', 'sort', 'splice', 'toLocaleString', 'unshift'];
  for (let i = 0; i < receiverOnly.length; i++) {
    const name = receiverOnly[i];
    const native = ArrayProto[name];
    const method = {
      [name](...args) {
        if (this === null || this === undefined) return apply(native, this, args);
        const target = ObjectCtor(this);
        const receiver = interruptible(target);
        const result = apply(native, receiver, args);
        return result === receiver ? target : result;
      },
    }[name];
    install(ArrayProto, name, method, native.length);
  }

  const concatInto = (target, item, n) => {
    let spread = false;
    if (isObject(item)) {
      const flag = item[spreadable];
      spread = flag !== undefined ? !!flag : isArray(item);
    }
    if (!spread) {
      if (n >= MAX_LENGTH) throw new TypeErrorCtor('array too long');
      createDataProperty(target, n, item);
      return n + 1;
    }
    const len = toLength(item.length);
    if (n + len > MAX_LENGTH) throw new TypeErrorCtor('array too long');
    for (let k = 0; k < len; k++, n++) {
      if (k in item) createDataProperty(target, n, item[k]);
    }
    return n;
  };
  const concat = {
    concat(...items) {
      const o = toObject(this);
      let total = isSmallArray(o) ? o.length : cap + 1;
      for (let i = 0; i < items.length && total <= cap; i++) {
        const item = items[i];
        total += !isObject(item) ? 1 : isSmallArray(item) ? item.length : cap + 1;
      }
      if (total <= cap) return apply(nativeConcat, o, items);
      const result = speciesCreate(o);
      let n = concatInto(result, o, 0);
      for (let i = 0; i < items.length; i++) n = concatInto(result, items[i], n);
      result.length = n;
      return result;
    },
  }.concat;
  install(ArrayProto, 'concat', concat, nativeConcat.length);

  const flattenInto = (target, source, sourceLen, start, depth, mapper, thisArg) => {
    let index = start;
    for (let i = 0; i < sourceLen; i++) {
      if (!(i in source)) continue;
      let element = source[i];
      if (mapper !== undefined) element = apply(mapper, thisArg, [element, i, source]);
      if (depth > 0 && isArray(element)) {
        index = flattenInto(target, element, toLength(element.length), index, depth - 1);
      } else {
        if (index >= MAX_LENGTH) throw new TypeErrorCtor('array too long');
        createDataProperty(target, index++, element);
      }
    }
    return index;
  };
  const flat = {
    flat(depth) {
      const o = toObject(this);
      const len = toLength(o.length);
      let depthNum = 1;
      if (depth !== undefined) {
        depthNum = toIntegerOrInfinity(depth);
        if (depthNum < 0) depthNum = 0;
      }
      const result = speciesCreate(o);
      flattenInto(result, o, len, 0, depthNum);
      return result;
    },
  }.flat;
  install(ArrayProto, 'flat', flat, ArrayProto.flat.length);
  const flatMap = {
    flatMap(mapper, thisArg) {
      const o = toObject(this);
      const len = toLength(o.length);
      if (typeof mapper !== 'function') throw new TypeErrorCtor('flatMap mapper is not a function');
      const result = speciesCreate(o);
      flattenInto(result, o, len, 0, 1, mapper, thisArg);
      return result;
    },
  }.flatMap;
  install(ArrayProto, 'flatMap', flatMap, ArrayProto.flatMap.length);

  const raw = {
    raw(template, ...substitutions) {
      const literals = toObject(toObject(template).raw);
      const args = [{ __proto__: null, raw: interruptible(literals) }];
      for (let i = 0; i < substitutions.length; i++) createDataProperty(args, i + 1, substitutions[i]);
      return apply(nativeRaw, StringCtor, args);
    },
  }.raw;
  install(StringCtor, 'raw', raw, nativeRaw.length);

  // Not ECMAScript: QuickJS' own addition.
  delete globalThis.queueMicrotask;

  // QuickJS polls the interrupt handler only every 10,000 cheap steps (calls, loop iterations), so a
  // loop around an expensive native call (`s.indexOf` on megabytes, a typed-array sort) would overrun
  // the deadline by minutes. Every built-in method therefore checks the deadline first; the check
  // throws once it has passed, and the handler, polled again soon, makes the stop uncatchable.
  // Constructors are left alone (their `new.target` semantics), and so is `eval` (direct eval).
  // Bookkeeping below uses the natives directly: the methods get wrapped while we traverse.
  const MapProto = Map.prototype, SetProto = Set.prototype;
  const mapGet = MapProto.get, mapSet = MapProto.set, setHas = SetProto.has, setAdd = SetProto.add;
  const arrayPush = ArrayProto.push;
  const guarded = new Map();
  const guard = (native) => {
    let method = apply(mapGet, guarded, [native]);
    if (method === undefined) {
      method = { [native.name](...args) { checkDeadline(); return apply(native, this, args); } }[native.name];
      defineProperty(method, 'length', { __proto__: null, value: native.length });
      apply(mapSet, guarded, [native, method]);
    }
    return method;
  };
  const seen = new Set([globalThis]);
  const pending = [globalThis];
  const visit = (o) => {
    if (o !== null && (typeof o === 'object' || typeof o === 'function') && !apply(setHas, seen, [o])) {
      apply(setAdd, seen, [o]);
      apply(arrayPush, pending, [o]);
    }
  };
  for (let i = 0; i < pending.length; i++) {
    const o = pending[i];
    visit(getPrototypeOf(o));
    const keys = ownKeys(o);
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k];
      const desc = getOwnPropertyDescriptor(o, key);
      if (!('value' in desc)) continue;
      const value = desc.value;
      if (typeof value !== 'function' || key === 'constructor' || isConstructor(value)) {
        visit(value);
      } else if (value !== globalThis.eval && (desc.writable || desc.configurable)) {
        defineProperty(o, key, { __proto__: null, value: guard(value) });
      }
    }
  }
})"#;

const MAX_WORKERS: usize = 4;
const QUEUE_CAPACITY: usize = 64;
/// QuickJS' own recursion guard. Interpreter frames are much larger in unoptimised builds, so this
/// leaves room for a useful depth there too; it must stay well below `WORKER_STACK_BYTES`.
const JS_STACK_BYTES: usize = 512 * 1024;
const WORKER_STACK_BYTES: usize = 4 * 1024 * 1024;

/// The ECMAScript built-ins; deliberately without `Performance` (a host API and a fine-grained timer)
/// and `DOMException`. `Eval` is needed for the runner's own evaluation, and lets `eval`/`Function`
/// work inside the sandbox, which cannot reach anything beyond the context either way.
type Intrinsics = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::Proxy,
    intrinsic::MapSet,
    intrinsic::TypedArrays,
    intrinsic::Promise,
    intrinsic::WeakRef,
);

/// Per-call resource limits; both apply to every worker.
#[derive(Clone, Copy, Debug)]
pub struct ScriptLimits {
    /// Wall-clock budget of one call, measured from the moment a worker picks the call up.
    pub time: Duration,
    /// Heap limit of each worker's QuickJS runtime. `0` means unlimited (QuickJS' convention).
    pub memory_bytes: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self { time: Duration::from_millis(50), memory_bytes: 16 * 1024 * 1024 }
    }
}

/// Why a script could not be compiled or did not produce claims.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    #[error("access denied by the custom JWT claims script: {0}")]
    Denied(String),
    #[error("the custom JWT claims script is invalid: {0}")]
    Syntax(String),
    #[error("the custom JWT claims script misbehaved: {0}")]
    Type(String),
    #[error("the custom JWT claims script ran longer than its time limit")]
    Timeout,
    #[error("the custom JWT claims script used more memory than its limit")]
    OutOfMemory,
    #[error("the custom JWT claims script failed: {0}")]
    Runtime(String),
    #[error("the custom JWT claims script runner is busy or unavailable")]
    Busy,
}

impl ScriptError {
    /// Stable kind names: "denied", "syntax", "type", "timeout", "oom", "runtime", "busy".
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Denied(_) => "denied",
            Self::Syntax(_) => "syntax",
            Self::Type(_) => "type",
            Self::Timeout => "timeout",
            Self::OutOfMemory => "oom",
            Self::Runtime(_) => "runtime",
            Self::Busy => "busy",
        }
    }
}

type Claims = Map<String, Json>;
type Outcome = Result<Claims, ScriptError>;

/// A compiled claims script with its own worker pool. Cloning is cheap; the workers stop once the
/// last clone is dropped (after finishing the call they are running, if any).
#[derive(Clone)]
pub struct ClaimsScript {
    inner: Arc<Inner>,
}

struct Inner {
    queue: SyncSender<Job>,
    pool: Arc<Pool>,
    workers: usize,
    source_len: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Workers stop once `queue` is dropped right after this; the watchdog needs telling.
        self.pool.closed.store(true, Ordering::Release);
        self.pool.wake_watchdog();
    }
}

struct Job {
    input: Json,
    reply: oneshot::Sender<Outcome>,
}

impl fmt::Debug for ClaimsScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimsScript")
            .field("source_len", &self.inner.source_len)
            .field("limits", &self.inner.pool.limits)
            .field("workers", &self.inner.workers)
            .finish_non_exhaustive()
    }
}

impl ClaimsScript {
    /// Compiles `source`; syntax errors and a missing getCustomJwtClaims are reported here.
    ///
    /// This prepares a runtime and evaluates the script's top level once (bounded by `limits.time`)
    /// and starts the worker threads, so it blocks the calling thread for `limits.time` plus ~5 ms
    /// at worst (2 × `limits.time` + 200 ms if the top level gets stuck in native code).
    pub fn compile(source: &str, limits: ScriptLimits) -> Result<ClaimsScript, ScriptError> {
        let workers = thread::available_parallelism().map_or(1, NonZeroUsize::get).min(MAX_WORKERS);
        Self::with_pool(source, limits, workers, QUEUE_CAPACITY)
    }

    fn with_pool(
        source: &str,
        limits: ScriptLimits,
        workers: usize,
        queue_capacity: usize,
    ) -> Result<ClaimsScript, ScriptError> {
        let source: Arc<str> = Arc::from(source);
        validate(&source, limits)?;

        let workers = workers.max(1);
        let (queue, jobs) = mpsc::sync_channel(queue_capacity);
        let pool = Arc::new(Pool {
            source: Arc::clone(&source),
            limits,
            target: workers,
            jobs: Mutex::new(jobs),
            origin: Instant::now(),
            slots: Mutex::new(Slots { live: Vec::with_capacity(workers), stuck: 0 }),
            closed: AtomicBool::new(false),
            watchdog: OnceLock::new(),
            watchdog_idle: AtomicBool::new(false),
        });
        // From here on an early return drops `queue`, which stops whatever was already started.
        let inner = Inner { queue, pool: Arc::clone(&pool), workers, source_len: source.len() };
        {
            let mut slots = lock(&pool.slots);
            for _ in 0..workers {
                let slot = spawn_worker(&pool).map_err(|_| ScriptError::Busy)?;
                slots.live.push(slot);
            }
        }
        let watched = Arc::clone(&pool);
        let watchdog = thread::Builder::new()
            .name("claims-script-watchdog".into())
            .spawn(move || watchdog_loop(&watched))
            .map_err(|_| ScriptError::Busy)?;
        let _ = pool.watchdog.set(watchdog.thread().clone());
        tracing::debug!(workers, source_len = source.len(), "custom JWT claims script compiled");
        Ok(ClaimsScript { inner: Arc::new(inner) })
    }

    /// Runs getCustomJwtClaims with `input` = {"token":…, "context":…, "environmentVariables":…}.
    pub async fn run(&self, input: Json) -> Result<Claims, ScriptError> {
        let (reply, outcome) = oneshot::channel();
        match self.inner.queue.try_send(Job { input, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Err(ScriptError::Busy),
        }
        outcome.await.unwrap_or(Err(ScriptError::Busy))
    }

    /// The limits the script was compiled with.
    pub fn limits(&self) -> ScriptLimits {
        self.inner.pool.limits
    }
}

fn internal_error() -> ScriptError {
    ScriptError::Runtime("internal error in the script runner".into())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing is left half-updated under these locks, so a panic elsewhere does not matter.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long a call may run before the watchdog gives up on its worker. The interrupt handler stops
/// almost everything at `limits.time`; this is for native operations QuickJS cannot interrupt
/// (e.g. printing a BigInt with hundreds of thousands of digits takes seconds).
fn stall_bound(limits: ScriptLimits) -> Duration {
    limits.time.saturating_mul(2).saturating_add(Duration::from_millis(200))
}

/// Evaluates the script once on a thread of known stack size: QuickJS' stack guard is relative to
/// where the runtime is created, and the caller's thread may already be deep in its stack.
fn validate(source: &Arc<str>, limits: ScriptLimits) -> Result<(), ScriptError> {
    let (done, result) = mpsc::channel();
    let source = Arc::clone(source);
    thread::Builder::new()
        .name("claims-script-compile".into())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || {
            let _ = done.send(Engine::start(&source, limits).map(drop));
        })
        .map_err(|_| ScriptError::Busy)?;
    match result.recv_timeout(stall_bound(limits)) {
        Ok(result) => result,
        // Left running: it ends on its own once the native operation it is stuck in returns.
        Err(RecvTimeoutError::Timeout) => Err(ScriptError::Timeout),
        Err(RecvTimeoutError::Disconnected) => Err(internal_error()),
    }
}

/// Shared by the handle, the workers and the watchdog.
struct Pool {
    source: Arc<str>,
    limits: ScriptLimits,
    /// Number of workers that should be taking jobs.
    target: usize,
    jobs: Mutex<Receiver<Job>>,
    origin: Instant,
    slots: Mutex<Slots>,
    closed: AtomicBool,
    watchdog: OnceLock<thread::Thread>,
    watchdog_idle: AtomicBool,
}

struct Slots {
    live: Vec<Arc<Slot>>,
    /// Abandoned workers still stuck in a native operation; capped at `target` so a script that
    /// keeps getting stuck cannot make the pool grow without bound.
    stuck: usize,
}

/// One worker as seen by the watchdog.
#[derive(Default)]
struct Slot {
    /// When the current job started (ns since `Pool::origin`, at least 1), or 0 when idle.
    /// Only changed with `reply` locked, so the pair is consistent for the watchdog.
    busy_since: AtomicU64,
    reply: Mutex<Option<oneshot::Sender<Outcome>>>,
    abandoned: AtomicBool,
}

impl Pool {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
    }

    fn wake_watchdog(&self) {
        if let Some(watchdog) = self.watchdog.get() {
            watchdog.unpark();
        }
    }

    /// Called by the worker that owns `slot` when it starts a job (or an engine rebuild).
    fn begin(&self, slot: &Slot, reply: Option<oneshot::Sender<Outcome>>) {
        let mut current = lock(&slot.reply);
        *current = reply;
        // SeqCst here and in the watchdog's idle check: each side stores, then reads the other's
        // flag, and at least one of them must see the other's store.
        slot.busy_since.store(self.now(), Ordering::SeqCst);
        drop(current);
        if self.watchdog_idle.swap(false, Ordering::SeqCst) {
            self.wake_watchdog();
        }
    }

    fn end(&self, slot: &Slot) {
        let mut current = lock(&slot.reply);
        slot.busy_since.store(0, Ordering::Release);
        if let Some(reply) = current.take() {
            let _ = reply.send(Err(internal_error()));
        }
    }

    /// An abandoned worker whose stuck operation finally returned: back into service if the pool
    /// is short of workers, otherwise it exits.
    fn rejoin(&self, slot: &Arc<Slot>) -> bool {
        let mut slots = lock(&self.slots);
        slots.stuck -= 1;
        if slots.live.len() < self.target && !self.closed.load(Ordering::Acquire) {
            slot.abandoned.store(false, Ordering::Release);
            slots.live.push(Arc::clone(slot));
            true
        } else {
            false
        }
    }
}

impl Slot {
    fn respond(&self, outcome: Outcome) {
        if let Some(reply) = lock(&self.reply).take() {
            let _ = reply.send(outcome);
        }
    }
}

fn spawn_worker(pool: &Arc<Pool>) -> std::io::Result<Arc<Slot>> {
    let slot = Arc::new(Slot::default());
    let (worker_pool, worker_slot) = (Arc::clone(pool), Arc::clone(&slot));
    thread::Builder::new()
        .name("claims-script-worker".into())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || worker_loop(&worker_pool, &worker_slot))?;
    Ok(slot)
}

fn worker_loop(pool: &Arc<Pool>, slot: &Arc<Slot>) {
    let mut engine = None;
    loop {
        if slot.abandoned.load(Ordering::Acquire) {
            if !pool.rejoin(slot) {
                break;
            }
            // A runtime that was stuck half-way through a native operation is not reused.
            engine = None;
        }
        if engine.is_none() {
            // Watched too, since the script's top level runs again; re-check for abandonment after.
            pool.begin(slot, None);
            engine = start_engine(&pool.source, pool.limits);
            pool.end(slot);
            if slot.abandoned.load(Ordering::Acquire) {
                continue;
            }
        }

        // Holding the lock while blocked is intended: idle workers queue up on the mutex instead.
        let job = lock(&pool.jobs).recv();
        let Ok(Job { input, reply }) = job else { break };
        if reply.is_closed() {
            continue;
        }
        pool.begin(slot, Some(reply));
        let current = match &engine {
            Some(current) => current,
            None => match panic::catch_unwind(|| Engine::start(&pool.source, pool.limits)) {
                Ok(Ok(fresh)) => engine.insert(fresh),
                Err(_) => {
                    slot.respond(Err(internal_error()));
                    pool.end(slot);
                    continue;
                }
                Ok(Err(err)) => {
                    slot.respond(Err(err));
                    pool.end(slot);
                    continue;
                }
            },
        };
        let health = panic::catch_unwind(AssertUnwindSafe(|| current.call(&input, |outcome| slot.respond(outcome))))
            .unwrap_or_else(|_| {
                tracing::debug!("custom JWT claims call panicked");
                Health::Recycle
            });
        pool.end(slot);
        if health == Health::Recycle {
            // The caller already has its answer, so the rebuild at the top of the loop is off its
            // latency path.
            tracing::debug!("discarding a QuickJS runtime after a timeout, memory exhaustion or panic");
            engine = None;
        }
    }
}

fn start_engine(source: &str, limits: ScriptLimits) -> Option<Engine> {
    panic::catch_unwind(|| Engine::start(source, limits))
        .ok()
        .and_then(|started| started.inspect_err(|err| tracing::debug!(kind = err.kind(), "could not start")).ok())
}

/// Notices workers stuck in a native operation QuickJS cannot interrupt: answers their caller with
/// [`ScriptError::Timeout`] and puts a fresh worker in their place. A thread cannot be killed, so
/// the stuck one keeps its CPU until the operation returns (seconds, in the cases known).
fn watchdog_loop(pool: &Arc<Pool>) {
    let bound = u64::try_from(stall_bound(pool.limits).as_nanos()).unwrap_or(u64::MAX);
    while !pool.closed.load(Ordering::Acquire) {
        let now = pool.now();
        let mut wake_at: Option<u64> = None;
        {
            let mut slots = lock(&pool.slots);
            for slot in slots.live.clone() {
                let since = slot.busy_since.load(Ordering::Acquire);
                if since == 0 {
                    continue;
                }
                let due = since.saturating_add(bound);
                if now < due {
                    wake_at = Some(wake_at.map_or(due, |at| at.min(due)));
                } else {
                    abandon(pool, &mut slots, &slot, since);
                }
            }
            if slots.live.is_empty() {
                // Every worker is stuck and the cap is reached: nobody would take queued jobs.
                if let Ok(jobs) = pool.jobs.try_lock() {
                    while let Ok(job) = jobs.try_recv() {
                        let _ = job.reply.send(Err(ScriptError::Busy));
                    }
                }
                wake_at = Some(now.saturating_add(10_000_000));
            }
        }
        match wake_at {
            Some(at) => thread::park_timeout(Duration::from_nanos(at.saturating_sub(now))),
            None => {
                pool.watchdog_idle.store(true, Ordering::SeqCst);
                // A worker that turned busy before seeing the flag would not wake us; look again.
                let busy = lock(&pool.slots).live.iter().any(|slot| slot.busy_since.load(Ordering::SeqCst) != 0);
                if !busy && !pool.closed.load(Ordering::Acquire) {
                    thread::park();
                }
                pool.watchdog_idle.store(false, Ordering::Release);
            }
        }
    }
}

fn abandon(pool: &Arc<Pool>, slots: &mut Slots, slot: &Arc<Slot>, since: u64) {
    {
        let mut reply = lock(&slot.reply);
        if slot.busy_since.load(Ordering::Acquire) != since {
            return; // finished (and maybe started another job) since we looked
        }
        slot.abandoned.store(true, Ordering::Release);
        if let Some(reply) = reply.take() {
            let _ = reply.send(Err(ScriptError::Timeout));
        }
    }
    slots.live.retain(|live| !Arc::ptr_eq(live, slot));
    slots.stuck += 1;
    tracing::debug!(stuck = slots.stuck, "a claims script worker is stuck past its deadline");
    if slots.stuck <= pool.target
        && let Ok(fresh) = spawn_worker(pool)
    {
        slots.live.push(fresh);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Health {
    Reusable,
    Recycle,
}

/// A deadline readable from the interrupt handler, which rquickjs requires to be `Send`.
struct Clock {
    origin: Instant,
    deadline: AtomicU64,
    tripped: AtomicBool,
}

impl Clock {
    fn new() -> Self {
        Self { origin: Instant::now(), deadline: AtomicU64::new(u64::MAX), tripped: AtomicBool::new(false) }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn arm(&self, budget: Duration) {
        let budget = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        self.tripped.store(false, Ordering::Relaxed);
        self.deadline.store(self.now().saturating_add(budget), Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.deadline.store(u64::MAX, Ordering::Relaxed);
    }

    /// Once past the deadline this keeps answering true, so code the interrupt unwinds through
    /// (`finally` blocks, getters run while reporting the error) is interrupted as well.
    fn expired(&self) -> bool {
        let expired = self.now() >= self.deadline.load(Ordering::Relaxed);
        if expired {
            self.tripped.store(true, Ordering::Relaxed);
        }
        expired
    }

    fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Relaxed)
    }
}

/// One worker's runtime with the script evaluated in its context, reused across calls.
struct Engine {
    // Declaration order is drop order: every JS value must be gone before its runtime (owned by the
    // context) is freed, or QuickJS aborts the process on a leak assertion.
    function: Persistent<Function<'static>>,
    context: Context,
    clock: Arc<Clock>,
    limits: ScriptLimits,
}

type Denial = Rc<RefCell<Option<String>>>;

impl Engine {
    /// Builds a runtime and context and evaluates the script's top level, jobs included.
    fn start(source: &str, limits: ScriptLimits) -> Result<Self, ScriptError> {
        let runtime = Runtime::new().map_err(|_| ScriptError::OutOfMemory)?;
        runtime.set_memory_limit(limits.memory_bytes);
        runtime.set_max_stack_size(JS_STACK_BYTES);
        let clock = Arc::new(Clock::new());
        let handler_clock = Arc::clone(&clock);
        runtime.set_interrupt_handler(Some(Box::new(move || handler_clock.expired())));
        let context = Context::custom::<Intrinsics>(&runtime).map_err(|_| ScriptError::OutOfMemory)?;

        let function = context.with(|ctx| {
            harden(&ctx, &clock).map_err(|err| classify(&ctx, err, &clock))?;
            // The budget covers the script's own top level, not the runner's preparation.
            clock.arm(limits.time);
            let function = load(&ctx, source, &clock)?;
            while ctx.execute_pending_job() {
                if clock.expired() {
                    return Err(ScriptError::Timeout);
                }
            }
            Ok(Persistent::save(&ctx, function))
        });
        clock.disarm();
        Ok(Self { function: function?, context, clock, limits })
    }

    /// Runs one call. `reply` gets the outcome as soon as it is known; promise jobs the script left
    /// behind run afterwards, off the caller's latency.
    fn call(&self, input: &Json, reply: impl FnOnce(Outcome)) -> Health {
        self.clock.arm(self.limits.time);
        let health = self.context.with(|ctx| {
            let denial: Denial = Rc::default();
            let mut outcome = match self.function.clone().restore(&ctx) {
                Ok(function) => invoke(&ctx, function, input, &denial, &self.clock),
                Err(err) => Err(classify(&ctx, err, &self.clock)),
            };
            // A result that only arrived after the deadline (say, a script that caught the error a
            // deadline-checking built-in threw) does not count: the limit is the limit.
            if outcome.is_ok() && self.clock.expired() {
                outcome = Err(ScriptError::Timeout);
            }
            let mut health = match outcome {
                Err(ScriptError::Timeout | ScriptError::OutOfMemory) => Health::Recycle,
                _ if self.clock.tripped() => Health::Recycle,
                _ => Health::Reusable,
            };
            // Denial wins over everything, including a script that caught and swallowed the throw.
            let denied = denial.borrow_mut().take();
            reply(match denied {
                Some(message) => Err(ScriptError::Denied(message)),
                None => outcome,
            });
            // Left-over jobs (un-awaited promises) would otherwise run inside the next call's budget.
            while health == Health::Reusable && ctx.execute_pending_job() {
                if self.clock.expired() {
                    health = Health::Recycle;
                }
            }
            health
        });
        self.clock.disarm();
        health
    }
}

fn invoke<'js>(ctx: &Ctx<'js>, function: Function<'js>, input: &Json, denial: &Denial, clock: &Clock) -> Outcome {
    let argument = build_argument(ctx, input, denial).map_err(|err| classify(ctx, err, clock))?;
    let returned: Value<'js> = function.call((argument,)).map_err(|err| classify(ctx, err, clock))?;
    let value = settle(ctx, returned, clock)?;
    into_claims(ctx, value, clock)
}

fn harden<'js>(ctx: &Ctx<'js>, clock: &Arc<Clock>) -> rquickjs::Result<()> {
    let harden: Function<'js> = ctx.eval(HARDEN_SOURCE)?;
    let is_genuine_array = Function::new(ctx.clone(), |value: Value<'js>| value.is_array())?;
    let clock = Arc::clone(clock);
    let check_deadline = Function::new(ctx.clone(), move |ctx: Ctx<'js>| -> rquickjs::Result<()> {
        if clock.expired() { Err(Exception::throw_internal(&ctx, "interrupted")) } else { Ok(()) }
    })?;
    let is_constructor = Function::new(ctx.clone(), |value: Value<'js>| value.is_constructor())?;
    harden.call((is_genuine_array, NATIVE_ARRAY_CAP, check_deadline, is_constructor))
}

/// Evaluates the script and returns its `getCustomJwtClaims`.
fn load<'js>(ctx: &Ctx<'js>, source: &str, clock: &Clock) -> Result<Function<'js>, ScriptError> {
    let mut options = EvalOptions::default();
    // Sloppy mode like Logto's `vm` sandbox: implicit globals (`getCustomJwtClaims = …`) must work.
    options.strict = false;
    options.backtrace_barrier = true;
    options.filename = Some(SCRIPT_FILE_NAME.into());
    ctx.eval_with_options::<Value<'js>, _>(source, options).map_err(|err| match err {
        rquickjs::Error::Exception => match classify(ctx, err, clock) {
            ScriptError::Runtime(message) if message.starts_with("SyntaxError") => ScriptError::Syntax(message),
            other => other,
        },
        // e.g. a NUL byte in the source, which QuickJS cannot take.
        other => ScriptError::Syntax(truncate(other.to_string())),
    })?;
    let found: Value<'js> = ctx.eval(LOOKUP_SOURCE).map_err(|err| classify(ctx, err, clock))?;
    if found.is_undefined() {
        return Err(ScriptError::Syntax(format!("the script does not define {FUNCTION_NAME}")));
    }
    found.into_function().ok_or_else(|| ScriptError::Type(format!("{FUNCTION_NAME} must be a function")))
}

fn build_argument<'js>(ctx: &Ctx<'js>, input: &Json, denial: &Denial) -> rquickjs::Result<Object<'js>> {
    let argument = Object::new(ctx.clone())?;
    for key in INPUT_KEYS {
        if let Some(value) = input.get(key) {
            // JS_ParseJSON builds the values natively, without running any script-visible code.
            argument.set(key, ctx.json_parse(value.to_string())?)?;
        }
    }
    let api = Object::new(ctx.clone())?;
    api.set("denyAccess", deny_access(ctx, denial)?)?;
    argument.set("api", api)?;
    Ok(argument)
}

fn deny_access<'js>(ctx: &Ctx<'js>, denial: &Denial) -> rquickjs::Result<Function<'js>> {
    let denial = Rc::clone(denial);
    let function =
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, message: Opt<Value<'js>>| -> rquickjs::Result<()> {
            let message = match message.0 {
                Some(value) if !value.is_undefined() => value
                    .get::<Coerced<String>>()
                    .map_or_else(|_| DEFAULT_DENY_MESSAGE.to_owned(), |text| truncate(text.0)),
                _ => DEFAULT_DENY_MESSAGE.to_owned(),
            };
            denial.borrow_mut().get_or_insert_with(|| message.clone());
            Err(Exception::throw_message(&ctx, &message))
        })?;
    function.with_name("denyAccess")
}

/// Awaits `returned` like Logto's `await getCustomJwtClaims(…)`: promises and thenables are resolved
/// by running the job queue until they settle or the deadline passes.
fn settle<'js>(ctx: &Ctx<'js>, returned: Value<'js>, clock: &Clock) -> Result<Value<'js>, ScriptError> {
    let promise = match returned.as_promise() {
        Some(promise) => promise.clone(),
        None if is_thenable(&returned) => {
            let (promise, resolve, _reject) = ctx.promise().map_err(|err| classify(ctx, err, clock))?;
            resolve.call::<_, ()>((returned,)).map_err(|err| classify(ctx, err, clock))?;
            promise
        }
        None => return Ok(returned),
    };
    loop {
        match promise.state() {
            PromiseState::Resolved | PromiseState::Rejected => {
                return match promise.result::<Value<'js>>() {
                    Some(Ok(value)) => Ok(value),
                    Some(Err(err)) => Err(classify(ctx, err, clock)),
                    None => Err(internal_error()),
                };
            }
            PromiseState::Pending => {
                if clock.expired() {
                    return Err(ScriptError::Timeout);
                }
                if !ctx.execute_pending_job() {
                    return Err(ScriptError::Runtime("the promise returned by the script never settled".into()));
                }
            }
        }
    }
}

fn is_thenable(value: &Value<'_>) -> bool {
    value.as_object().and_then(|object| object.get::<_, Value>("then").ok()).is_some_and(|then| then.is_function())
}

fn into_claims<'js>(ctx: &Ctx<'js>, value: Value<'js>, clock: &Clock) -> Outcome {
    if !value.is_object() || value.is_array() || value.is_function() {
        return Err(ScriptError::Type(MUST_RETURN_OBJECT.into()));
    }
    // JSON.stringify semantics (dropping functions and undefined, toJSON, …) come for free this way.
    let text = match ctx.json_stringify(value) {
        Ok(Some(text)) => text.to_string().map_err(|_| ScriptError::Type(MUST_BE_SERIALIZABLE.into()))?,
        Ok(None) => return Err(ScriptError::Type(MUST_RETURN_OBJECT.into())),
        Err(err) => {
            return Err(match classify(ctx, err, clock) {
                ScriptError::Runtime(_) => ScriptError::Type(MUST_BE_SERIALIZABLE.into()),
                other => other,
            });
        }
    };
    match serde_json::from_str(&text) {
        Ok(Json::Object(claims)) => Ok(claims),
        // e.g. a Date, or a toJSON() that returns a primitive
        Ok(_) => Err(ScriptError::Type(MUST_RETURN_OBJECT.into())),
        // lone surrogates, or nesting deeper than serde_json's recursion limit
        Err(_) => Err(ScriptError::Type(MUST_BE_SERIALIZABLE.into())),
    }
}

/// Maps an rquickjs error to a [`ScriptError`], taking the pending exception off the context.
fn classify(ctx: &Ctx<'_>, err: rquickjs::Error, clock: &Clock) -> ScriptError {
    // Past the deadline any error counts as the timeout: it may well have been caused by it (the
    // interrupt itself, or a deadline check in a built-in), and the runtime gets recycled either way.
    if clock.expired() {
        if matches!(err, rquickjs::Error::Exception) {
            drop(ctx.catch());
        }
        return ScriptError::Timeout;
    }
    match err {
        rquickjs::Error::Exception => describe_exception(ctx.catch()),
        rquickjs::Error::Allocation => ScriptError::OutOfMemory,
        other => ScriptError::Runtime(truncate(other.to_string())),
    }
}

fn describe_exception(thrown: Value<'_>) -> ScriptError {
    // QuickJS throws `null` when it cannot even allocate the error object for an out-of-memory
    // condition. A script that throws `null` itself is therefore reported as out of memory too.
    if thrown.is_null() || thrown.type_of() == rquickjs::Type::Uninitialized {
        return ScriptError::OutOfMemory;
    }
    let text = match thrown.as_exception() {
        Some(error) => {
            let property = |key: &str| {
                error
                    .get::<_, Value>(key)
                    .ok()
                    .filter(|value| !value.is_undefined())
                    .and_then(|value| value.get::<Coerced<String>>().ok().map(|text| text.0))
            };
            let name = property("name").unwrap_or_else(|| "Error".to_owned());
            let message = property("message").unwrap_or_default();
            if name == "InternalError" && message.starts_with("out of memory") {
                return ScriptError::OutOfMemory;
            }
            // What Error.prototype.toString would give, without calling it: the script may have
            // replaced it, and the built-in checks the deadline.
            match (name.is_empty(), message.is_empty()) {
                (_, true) => name,
                (true, false) => message,
                (false, false) => format!("{name}: {message}"),
            }
        }
        None => thrown.get::<Coerced<String>>().map_or_else(|_| "uncaught exception".to_owned(), |text| text.0),
    };
    ScriptError::Runtime(truncate(text))
}

fn truncate(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_MESSAGE_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LOGTO_SCRIPT: &str = r#"
const getCustomJwtClaims = async ({ token, context, environmentVariables, api }) => {
  const defaults = (environmentVariables?.USER_DEFAULT_ROLE_NAMES ?? '')
    .split(',').map((s) => s.trim()).filter(Boolean);
  const roleNames = (context?.user?.roles ?? []).map(({ name }) => name);
  return {
    'https://hasura.io/jwt/claims': {
      'x-hasura-user-id': context?.user?.id ?? token.accountId,
      'x-hasura-default-role': defaults[0] ?? roleNames[0],
      'x-hasura-allowed-roles': [...new Set([...defaults, ...roleNames])],
    },
  };
};
"#;

    fn logto_input() -> Json {
        json!({
            "token": { "accountId": "acc_1", "clientId": "app_1", "scope": "openid profile", "kind": "AccessToken" },
            "context": {
                "user": {
                    "id": "u_42",
                    "username": "ada",
                    "primaryEmail": "ada@example.com",
                    "roles": [
                        { "id": "r1", "name": "editor", "description": "", "scopes": [] },
                        { "id": "r2", "name": "user", "description": "", "scopes": [] }
                    ],
                    "organizations": []
                }
            },
            "environmentVariables": { "USER_DEFAULT_ROLE_NAMES": " user , viewer ,," }
        })
    }

    fn compile(source: &str) -> ClaimsScript {
        ClaimsScript::compile(source, ScriptLimits::default()).expect("script compiles")
    }

    fn compile_err(source: &str) -> ScriptError {
        ClaimsScript::compile(source, ScriptLimits::default()).expect_err("compile must fail")
    }

    async fn run(script: &ClaimsScript, input: Json) -> Outcome {
        script.run(input).await
    }

    async fn run_once(source: &str) -> Outcome {
        run(&compile(source), json!({})).await
    }

    #[tokio::test]
    async fn logto_script_produces_hasura_claims() {
        let script = compile(LOGTO_SCRIPT);
        let claims = run(&script, logto_input()).await.unwrap();
        assert_eq!(
            Json::Object(claims),
            json!({
                "https://hasura.io/jwt/claims": {
                    "x-hasura-user-id": "u_42",
                    "x-hasura-default-role": "user",
                    "x-hasura-allowed-roles": ["user", "viewer", "editor"],
                }
            })
        );

        // Without context.user the token's account id and the defaults are used.
        let claims = run(&script, json!({ "token": { "accountId": "acc_1" }, "context": {} })).await.unwrap();
        assert_eq!(
            Json::Object(claims),
            json!({ "https://hasura.io/jwt/claims": { "x-hasura-user-id": "acc_1", "x-hasura-allowed-roles": [] } })
        );
    }

    #[tokio::test]
    async fn accepts_every_way_of_defining_the_function() {
        let forms = [
            "let getCustomJwtClaims = ({ token }) => ({ sub: token.sub });",
            "function getCustomJwtClaims({ token }) { return { sub: token.sub }; }",
            "async function getCustomJwtClaims({ token }) { return { sub: token.sub }; }",
            "getCustomJwtClaims = async ({ token, api }) => ({ sub: token.sub });",
            "var getCustomJwtClaims = function ({ token }) { return { sub: token.sub }; };",
            "'use strict'; const getCustomJwtClaims = ({ token }) => ({ sub: token.sub });",
        ];
        for source in forms {
            let script = compile(source);
            let claims = run(&script, json!({ "token": { "sub": "s1" } })).await;
            assert_eq!(claims.unwrap(), json!({ "sub": "s1" }).as_object().unwrap().clone(), "{source}");
        }
    }

    #[tokio::test]
    async fn sync_function_result_is_used_directly() {
        let claims = run_once("const getCustomJwtClaims = () => ({ n: 1, nested: { ok: true } });").await;
        assert_eq!(Json::Object(claims.unwrap()), json!({ "n": 1, "nested": { "ok": true } }));
    }

    #[tokio::test]
    async fn awaited_promises_and_thenables_settle() {
        let source = r#"
            const later = (v) => new Promise((resolve) => Promise.resolve().then(() => resolve(v)));
            const getCustomJwtClaims = async ({ environmentVariables }) => {
              const a = await later(1);
              const [b, c] = await Promise.all([later(2), (async () => 3)()]);
              const d = await { then(resolve) { resolve(4); } };
              return { sum: a + b + c + d, env: environmentVariables.K };
            };
        "#;
        let claims = run(&compile(source), json!({ "environmentVariables": { "K": "v" } })).await;
        assert_eq!(Json::Object(claims.unwrap()), json!({ "sum": 10, "env": "v" }));

        let thenable = "const getCustomJwtClaims = () => ({ then(resolve) { resolve({ via: 'then' }); } });";
        assert_eq!(Json::Object(run_once(thenable).await.unwrap()), json!({ "via": "then" }));
    }

    #[tokio::test]
    async fn deny_access_ends_the_run() {
        let with_message = "const getCustomJwtClaims = async ({ api }) => { api.denyAccess('no roles'); return {}; };";
        assert_eq!(run_once(with_message).await, Err(ScriptError::Denied("no roles".into())));

        let without = "const getCustomJwtClaims = ({ api }) => { api.denyAccess(); };";
        assert_eq!(run_once(without).await, Err(ScriptError::Denied("Access denied".into())));

        let swallowed = r#"
            const getCustomJwtClaims = async ({ api }) => {
              try { api.denyAccess('caught'); } catch (e) { return { message: e.message }; }
            };
        "#;
        assert_eq!(run_once(swallowed).await, Err(ScriptError::Denied("caught".into())));

        let in_a_job = "const getCustomJwtClaims = async ({ api }) => { await null; api.denyAccess('later'); };";
        let err = run_once(in_a_job).await.unwrap_err();
        assert_eq!(err, ScriptError::Denied("later".into()));
        assert_eq!(err.kind(), "denied");
    }

    #[tokio::test]
    async fn thrown_errors_are_runtime_errors() {
        let err = run_once("const getCustomJwtClaims = async () => { throw new Error('boom'); };").await;
        assert_eq!(err, Err(ScriptError::Runtime("Error: boom".into())));

        let err = run_once("function getCustomJwtClaims() { throw 'plain'; }").await;
        assert_eq!(err, Err(ScriptError::Runtime("plain".into())));

        // QuickJS throws `null` when it cannot allocate an error object, so `null` reads as OOM.
        let err = run_once("function getCustomJwtClaims() { throw null; }").await;
        assert_eq!(err, Err(ScriptError::OutOfMemory));

        let err = run_once("const getCustomJwtClaims = ({ token }) => ({ id: token.id });").await;
        assert_eq!(err.unwrap_err().kind(), "runtime", "token is undefined when the input has none");

        let long = run_once("const getCustomJwtClaims = () => { throw new Error('x'.repeat(10000)); };").await;
        let ScriptError::Runtime(message) = long.unwrap_err() else { panic!("expected a runtime error") };
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[tokio::test]
    async fn compile_reports_syntax_and_missing_function() {
        let err = compile_err("const getCustomJwtClaims = async ({ token ) => {};");
        assert!(matches!(&err, ScriptError::Syntax(m) if m.starts_with("SyntaxError")), "{err:?}");
        assert_eq!(err.kind(), "syntax");

        let err = compile_err("const somethingElse = () => ({});");
        assert_eq!(err, ScriptError::Syntax("the script does not define getCustomJwtClaims".into()));

        let err = compile_err("const getCustomJwtClaims = { claims: 1 };");
        assert_eq!(err, ScriptError::Type("getCustomJwtClaims must be a function".into()));

        let err = compile_err("throw new TypeError('top level');");
        assert_eq!(err, ScriptError::Runtime("TypeError: top level".into()));

        assert_eq!(compile_err("while (true) {}"), ScriptError::Timeout);
        assert!(matches!(compile_err("const getCustomJwtClaims = 1;\0"), ScriptError::Syntax(_)));
        // Modules are not accepted: the script is a classic script.
        assert!(matches!(compile_err("export const getCustomJwtClaims = () => ({});"), ScriptError::Syntax(_)));
    }

    #[tokio::test]
    async fn non_object_results_are_type_errors() {
        let must_return_object = Err(ScriptError::Type(MUST_RETURN_OBJECT.into()));
        for result in ["[]", "null", "42", "'text'", "undefined", "() => 1", "new Date(0)", "({ toJSON: () => 1 })"] {
            let source = format!("const getCustomJwtClaims = async () => {result};");
            assert_eq!(run_once(&source).await, must_return_object, "{result}");
        }
        let no_return = "function getCustomJwtClaims() {}";
        assert_eq!(run_once(no_return).await, must_return_object);
    }

    #[tokio::test]
    async fn non_serializable_results_are_type_errors() {
        let not_serializable = Err(ScriptError::Type(MUST_BE_SERIALIZABLE.into()));
        for result in ["{ big: 10n }", "(() => { const o = {}; o.self = o; return o; })()"] {
            let source = format!("const getCustomJwtClaims = () => ({result});");
            assert_eq!(run_once(&source).await, not_serializable, "{result}");
        }
        let dropped = "const getCustomJwtClaims = () => ({ keep: 1, f() {}, u: undefined, n: NaN });";
        assert_eq!(Json::Object(run_once(dropped).await.unwrap()), json!({ "keep": 1, "n": null }));
    }

    #[tokio::test]
    async fn infinite_loops_time_out_and_the_script_keeps_working() {
        let source = r#"
            const getCustomJwtClaims = async ({ token }) => {
              if (token.mode === 'spin') { while (true) {} }
              if (token.mode === 'spin-finally') { try { while (true) {} } finally { while (true) {} } }
              if (token.mode === 'async-spin') { await null; for (;;) {} }
              if (token.mode === 'job-chain') { for (;;) { await null; } }
              if (token.mode === 'regex') { return { m: /^(a+)+$/.test('a'.repeat(40) + 'b') }; }
              if (token.mode === 'caught') { try { for (;;) 'ab'.indexOf('c'); } catch (e) {} return { late: true }; }
              return { ok: true };
            };
        "#;
        let script = ClaimsScript::with_pool(source, ScriptLimits::default(), 1, 8).unwrap();
        for mode in ["spin", "spin-finally", "async-spin", "job-chain", "regex", "caught"] {
            let started = Instant::now();
            let outcome = run(&script, json!({ "token": { "mode": mode } })).await;
            assert_eq!(outcome, Err(ScriptError::Timeout), "{mode}");
            assert!(started.elapsed() < Duration::from_secs(1), "{mode} took {:?}", started.elapsed());
            let ok = run(&script, json!({ "token": { "mode": "normal" } })).await;
            assert_eq!(Json::Object(ok.unwrap()), json!({ "ok": true }), "after {mode}");
        }
        assert_eq!(ScriptError::Timeout.kind(), "timeout");
    }

    #[tokio::test]
    async fn native_loops_quickjs_does_not_poll_still_time_out() {
        let cases = [
            "Array(2 ** 32 - 1).join('')",
            "String(Array(2 ** 32 - 1))",
            "Array.prototype.reverse.call({ length: 2 ** 53 - 1 })",
            "Array.prototype.shift.call(new Proxy([], { get: (t, k) => (k === 'length' ? 2 ** 53 - 1 : t[k]) }))",
            "[].concat(Array(2 ** 32 - 1))",
            "[Array(2 ** 32 - 1)].flat()",
            "[1].flatMap(() => Array(2 ** 32 - 1))",
            "String.raw({ raw: { length: 2 ** 53 - 1 } })",
            "(() => { const s = 'ab'.repeat(1e6); for (;;) s.indexOf('c'); })()",
            "(() => { const a = new Uint8Array(4e6); for (;;) a.sort(); })()",
        ];
        let source = "const getCustomJwtClaims = ({ token }) => ({ r: String(eval(token.expr)).length });";
        let script = ClaimsScript::with_pool(source, ScriptLimits::default(), 1, 8).unwrap();
        for expr in cases {
            let started = Instant::now();
            let run = script.run(json!({ "token": { "expr": expr } }));
            let outcome = tokio::time::timeout(Duration::from_secs(5), run).await.expect(expr);
            assert_eq!(outcome, Err(ScriptError::Timeout), "{expr}");
            assert!(started.elapsed() < Duration::from_secs(1), "{expr} took {:?}", started.elapsed());
        }
    }

    #[tokio::test]
    async fn hardened_builtins_keep_their_semantics() {
        let source = r#"
            class MyArray extends Array {}
            const getCustomJwtClaims = () => {
              const local = 5;
              const checks = {
                join: [1, [2, 3]].join('-') === '1-2,3',
                joinArrayLike: Array.prototype.join.call({ length: 2, 0: 'a', 1: 'b' }, '+') === 'a+b',
                toStringUsesJoin: String([1, [2, 3]]) === '1,2,3',
                reverseReturnsThis: (() => { const a = [1, 2]; return a.reverse() === a && a[0] === 2; })(),
                sortArrayLike: (() => {
                  const o = { length: 3, 0: 'c', 1: 'a', 2: 'b' };
                  return Array.prototype.sort.call(o) === o && o[0] === 'a' && o[2] === 'c';
                })(),
                spliceArrayLike: (() => {
                  const o = { length: 3, 0: 'a', 1: 'b', 2: 'c' };
                  const removed = Array.prototype.splice.call(o, 1, 1);
                  return removed.join() === 'b' && o.length === 2 && o[1] === 'c';
                })(),
                concat: JSON.stringify([1].concat([2, [3]], 4)) === '[1,2,[3],4]',
                concatSpreadable: [0].concat({ length: 2, 0: 'x', 1: 'y', [Symbol.isConcatSpreadable]: true }).join() === '0,x,y',
                concatHoles: (() => {
                  const r = [, 1].concat([2, , 3], { length: 1, [Symbol.isConcatSpreadable]: true });
                  return r.length === 6 && !(0 in r) && !(3 in r) && !(5 in r) && r[4] === 3;
                })(),
                concatKeepsObjects: (() => { const o = {}; return [].concat(o, 'x')[0] === o; })(),
                concatSpecies: new MyArray(1, 2).concat([3]) instanceof MyArray,
                flat: JSON.stringify([1, [2, [3, [4]]]].flat()) === '[1,2,[3,[4]]]',
                flatInfinity: [1, [2, [3, [4]]]].flat(Infinity).join() === '1,2,3,4',
                flatHoles: JSON.stringify([1, , [2, , 3]].flat()) === '[1,2,3]',
                flatSpecies: new MyArray(1, 2).flat() instanceof MyArray,
                flatMap: JSON.stringify([1, 2].flatMap((x) => [x, [x * 10]])) === '[1,[10],2,[20]]',
                flatMapThisArg: [1].flatMap(function () { return this.v; }, { v: 7 })[0] === 7,
                flatMapNeedsFunction: (() => { try { [1].flatMap(1); return false; } catch (e) { return e instanceof TypeError; } })(),
                raw: String.raw`a
${1}b` === 'a\n1b',
                rawObject: String.raw({ raw: ['x', 'y', 'z'] }, 1, 2) === 'x1y2z',
                lengths: [].join.length === 1 && [].concat.length === 1 && [].flat.length === 0 && [].flatMap.length === 1,
                names: [].join.name === 'join' && [].map.name === 'map' && Object.keys.name === 'keys',
                aliasesStayAliases: Array.prototype.values === Array.prototype[Symbol.iterator],
                typedArrays: new Uint8Array([3, 1, 2]).sort().join() === '1,2,3',
                directEval: eval('local') === 5,
                builtins: Math.max(1, 3) === 3 && Object.keys({ a: 1 }).join() === 'a' && [...new Set([1, 1, 2])].length === 2,
              };
              return { failed: Object.keys(checks).filter((name) => checks[name] !== true) };
            };
        "#;
        assert_eq!(Json::Object(run_once(source).await.unwrap()), json!({ "failed": [] }));
    }

    #[tokio::test]
    async fn a_worker_stuck_in_native_code_is_replaced() {
        // Printing a BigInt of ~800k bits takes QuickJS more than a second in one native call, which
        // the interrupt handler cannot stop; the watchdog answers and brings in a new worker. (At
        // half the size a fast machine finished the first call before the pool was checked busy.)
        let source = r#"
            const getCustomJwtClaims = ({ token }) => (token.stuck ? { n: String(3n ** 500000n).length } : { ok: true });
        "#;
        let script = ClaimsScript::with_pool(source, ScriptLimits::default(), 1, 8).unwrap();
        let started = Instant::now();
        assert_eq!(script.run(json!({ "token": { "stuck": true } })).await, Err(ScriptError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        let ok = script.run(json!({ "token": {} })).await;
        assert_eq!(Json::Object(ok.unwrap()), json!({ "ok": true }));

        // With as many stuck threads as workers no replacement is started: calls are refused
        // instead of queueing forever, until a stuck thread comes back.
        assert_eq!(script.run(json!({ "token": { "stuck": true } })).await, Err(ScriptError::Timeout));
        let started = Instant::now();
        assert_eq!(script.run(json!({ "token": {} })).await, Err(ScriptError::Busy));
        assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
        // Several seconds with QuickJS optimised, many times that at opt-level 0.
        let deadline = Instant::now() + Duration::from_secs(120);
        while script.run(json!({ "token": {} })).await.is_err() {
            assert!(Instant::now() < deadline, "the pool did not recover");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn memory_bombs_run_out_of_memory_and_the_script_keeps_working() {
        let source = r#"
            const getCustomJwtClaims = async ({ token }) => {
              if (token.mode === 'array') { const a = []; while (true) a.push('x'.repeat(1e6)); }
              if (token.mode === 'string') { return { s: 'x'.repeat(2 ** 28) }; }
              if (token.mode === 'async') { await null; const a = []; for (;;) a.push(new Array(1e5).fill(1)); }
              if (token.mode === 'buffer') { return { b: new ArrayBuffer(64 * 1024 * 1024) }; }
              return { ok: true };
            };
        "#;
        // 'x'.repeat(1e6) alone takes ~6 ms in QuickJS, so with the default 50 ms budget the array
        // bomb would be stopped by the clock first; a generous budget makes memory the binding limit.
        let limits = ScriptLimits { time: Duration::from_secs(5), ..ScriptLimits::default() };
        let script = ClaimsScript::with_pool(source, limits, 1, 8).unwrap();
        for mode in ["array", "string", "async", "buffer"] {
            let outcome = run(&script, json!({ "token": { "mode": mode } })).await;
            assert_eq!(outcome, Err(ScriptError::OutOfMemory), "{mode}");
            let ok = run(&script, json!({ "token": { "mode": "normal" } })).await;
            assert_eq!(Json::Object(ok.unwrap()), json!({ "ok": true }), "after {mode}");
        }
        assert_eq!(ScriptError::OutOfMemory.kind(), "oom");
    }

    #[tokio::test]
    async fn deep_recursion_is_an_error_not_a_crash() {
        let source = r#"
            const getCustomJwtClaims = ({ token }) => {
              if (token.mode === 'plain') { const f = (n) => f(n + 1) + 1; return { n: f(0) }; }
              if (token.mode === 'json') { let o = {}; for (let i = 0; i < 5e3; i++) o = { o }; return o; }
              return { ok: true };
            };
        "#;
        // Building 5,000 nested objects is slow in an unoptimised QuickJS; time is not what is tested.
        let limits = ScriptLimits { time: Duration::from_secs(5), ..ScriptLimits::default() };
        let script = ClaimsScript::compile(source, limits).unwrap();
        let err = run(&script, json!({ "token": { "mode": "plain" } })).await.unwrap_err();
        assert_eq!(err, ScriptError::Runtime("RangeError: Maximum call stack size exceeded".into()));
        let err = run(&script, json!({ "token": { "mode": "json" } })).await.unwrap_err();
        assert_eq!(err, ScriptError::Type(MUST_BE_SERIALIZABLE.into()));
        assert!(run(&script, json!({ "token": {} })).await.is_ok());
    }

    #[tokio::test]
    async fn sandbox_exposes_only_ecmascript() {
        let source = r#"
            const getCustomJwtClaims = async ({ api }) => {
              let dynamicImport;
              try { await import('x'); dynamicImport = 'loaded'; } catch (e) { dynamicImport = String(e); }
              let atomicsWait;
              try { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000); atomicsWait = 'waited'; }
              catch (e) { atomicsWait = e.name; }
              return {
                types: [typeof fetch, typeof require, typeof setTimeout, typeof setInterval, typeof process,
                        typeof std, typeof os, typeof performance, typeof queueMicrotask, typeof module],
                dynamicImport,
                atomicsWait,
                evalWorks: eval('1 + 1') === 2 && Function('return typeof fetch')() === 'undefined',
                apiKeys: Object.keys(api),
                globals: Object.getOwnPropertyNames(globalThis).sort(),
              };
            };
        "#;
        let claims = run_once(source).await.unwrap();
        assert_eq!(claims["types"], json!(["undefined"; 10].to_vec()));
        assert_eq!(claims["dynamicImport"], json!("ReferenceError: could not load module 'x'"));
        assert_eq!(claims["atomicsWait"], json!("TypeError"));
        assert_eq!(claims["evalWorks"], json!(true));
        assert_eq!(claims["apiKeys"], json!(["denyAccess"]));

        // Everything on globalThis must be standard ECMAScript (InternalError is QuickJS' own error type).
        const STANDARD: &[&str] = &[
            "AggregateError",
            "Array",
            "ArrayBuffer",
            "Atomics",
            "BigInt",
            "BigInt64Array",
            "BigUint64Array",
            "Boolean",
            "DataView",
            "Date",
            "decodeURI",
            "decodeURIComponent",
            "DisposableStack",
            "AsyncDisposableStack",
            "encodeURI",
            "encodeURIComponent",
            "Error",
            "escape",
            "eval",
            "EvalError",
            "FinalizationRegistry",
            "Float16Array",
            "Float32Array",
            "Float64Array",
            "Function",
            "globalThis",
            "Infinity",
            "Int16Array",
            "Int32Array",
            "Int8Array",
            "InternalError",
            "isFinite",
            "isNaN",
            "Iterator",
            "JSON",
            "Map",
            "Math",
            "NaN",
            "Number",
            "Object",
            "parseFloat",
            "parseInt",
            "Promise",
            "Proxy",
            "RangeError",
            "ReferenceError",
            "Reflect",
            "RegExp",
            "Set",
            "SharedArrayBuffer",
            "String",
            "SuppressedError",
            "Symbol",
            "SyntaxError",
            "TypeError",
            "Uint16Array",
            "Uint32Array",
            "Uint8Array",
            "Uint8ClampedArray",
            "undefined",
            "unescape",
            "URIError",
            "WeakMap",
            "WeakRef",
            "WeakSet",
        ];
        let globals = claims["globals"].as_array().unwrap();
        let extra: Vec<_> = globals.iter().filter_map(Json::as_str).filter(|name| !STANDARD.contains(name)).collect();
        assert!(extra.is_empty(), "non-standard globals: {extra:?}");
    }

    #[tokio::test]
    async fn state_persists_per_worker_until_its_runtime_is_recycled() {
        let source = r#"
            let calls = 0;
            const getCustomJwtClaims = ({ token }) => {
              calls += 1;
              const seen = globalThis.leaked ?? null;
              globalThis.leaked = token.user;
              if (token.spin) while (true) {}
              return { calls, seen };
            };
        "#;
        let script = ClaimsScript::with_pool(source, ScriptLimits::default(), 1, 8).unwrap();
        let first = run(&script, json!({ "token": { "user": "a" } })).await.unwrap();
        assert_eq!(Json::Object(first), json!({ "calls": 1, "seen": null }));
        // Like Logto, one worker keeps its script state between calls (see the module docs).
        let second = run(&script, json!({ "token": { "user": "b" } })).await.unwrap();
        assert_eq!(Json::Object(second), json!({ "calls": 2, "seen": "a" }));
        assert_eq!(run(&script, json!({ "token": { "spin": true } })).await, Err(ScriptError::Timeout));
        let after = run(&script, json!({ "token": { "user": "c" } })).await.unwrap();
        assert_eq!(Json::Object(after), json!({ "calls": 1, "seen": null }), "a fresh runtime after the timeout");
    }

    #[tokio::test]
    async fn concurrent_runs_succeed_or_report_busy() {
        let source = "const getCustomJwtClaims = async ({ token }) => { await null; return { n: token.n }; };";
        let script = ClaimsScript::with_pool(source, ScriptLimits::default(), 2, 4).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|n| {
                let script = script.clone();
                tokio::spawn(async move { (n, script.run(json!({ "token": { "n": n } })).await) })
            })
            .collect();
        let (mut ok, mut busy) = (0, 0);
        for task in tasks {
            let (n, outcome) = tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
            match outcome {
                Ok(claims) => {
                    assert_eq!(claims["n"], json!(n));
                    ok += 1;
                }
                Err(ScriptError::Busy) => busy += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(ok + busy, 200);
        assert!(ok > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_is_busy_at_once_and_dropping_the_handle_stops_workers() {
        let source = "const getCustomJwtClaims = ({ token }) => { if (token.spin) while (true) {} return {}; };";
        let limits = ScriptLimits { time: Duration::from_millis(200), ..ScriptLimits::default() };
        let script = ClaimsScript::with_pool(source, limits, 1, 1).unwrap();
        let alive = Arc::downgrade(&script.inner.pool);
        let spinner = script.clone();
        let first = tokio::spawn(async move { spinner.run(json!({ "token": { "spin": true } })).await });
        let running = || lock(&script.inner.pool.slots).live.iter().any(|slot| lock(&slot.reply).is_some());
        while !running() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Fill the single queue slot directly, so nothing depends on task scheduling.
        let (reply, second) = oneshot::channel();
        script.inner.queue.try_send(Job { input: json!({ "token": {} }), reply }).ok().unwrap();
        let started = Instant::now();
        assert_eq!(script.run(json!({ "token": {} })).await, Err(ScriptError::Busy));
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(first.await.unwrap(), Err(ScriptError::Timeout));
        assert!(second.await.unwrap().is_ok());

        assert!(format!("{script:?}").contains("source_len"));
        assert_eq!(script.limits().time, Duration::from_millis(200));
        drop(script);
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive.upgrade().is_some() {
            assert!(Instant::now() < deadline, "workers did not stop");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn kinds_and_messages_are_stable() {
        let cases = [
            (ScriptError::Denied("x".into()), "denied"),
            (ScriptError::Syntax("x".into()), "syntax"),
            (ScriptError::Type("x".into()), "type"),
            (ScriptError::Timeout, "timeout"),
            (ScriptError::OutOfMemory, "oom"),
            (ScriptError::Runtime("x".into()), "runtime"),
            (ScriptError::Busy, "busy"),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind(), kind);
            assert!(!err.to_string().is_empty());
        }
        assert_eq!(truncate("short".into()), "short");
        let limits = ScriptLimits::default();
        assert_eq!((limits.time, limits.memory_bytes), (Duration::from_millis(50), 16 * 1024 * 1024));
    }

    /// `cargo test --release -- --ignored --nocapture timing`
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "prints per-call timings; run in release mode"]
    async fn timing() {
        let script = compile(LOGTO_SCRIPT);
        let input = logto_input();
        for _ in 0..500 {
            script.run(input.clone()).await.unwrap();
        }
        let mut samples = Vec::with_capacity(10_000);
        for _ in 0..10_000 {
            let started = Instant::now();
            script.run(input.clone()).await.unwrap();
            samples.push(started.elapsed());
        }
        samples.sort();
        let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
        println!(
            "sequential round trip over {} calls: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
            samples.len(),
            pct(50),
            pct(90),
            pct(99),
            samples[samples.len() - 1]
        );

        // The work inside one worker, without channel and wake-up latency.
        let engine = Engine::start(LOGTO_SCRIPT, ScriptLimits::default()).unwrap();
        let mut inner = Vec::with_capacity(10_000);
        for round in 0..10_500 {
            let started = Instant::now();
            let mut took = Duration::ZERO;
            engine.call(&input, |outcome| {
                took = started.elapsed();
                outcome.unwrap();
            });
            if round >= 500 {
                inner.push((took, started.elapsed()));
            }
        }
        let mut replies: Vec<_> = inner.iter().map(|(reply, _)| *reply).collect();
        let mut totals: Vec<_> = inner.iter().map(|(_, total)| *total).collect();
        replies.sort();
        totals.sort();
        let at = |v: &[Duration], p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
        println!(
            "in-worker until reply: p50 {:?}  p99 {:?};  including left-over job check: p50 {:?}  p99 {:?}",
            at(&replies, 50),
            at(&replies, 99),
            at(&totals, 50),
            at(&totals, 99)
        );

        // A rebuild after a timeout or memory exhaustion: runtime + context + hardening + evaluation.
        let mut starts: Vec<_> = (0..500)
            .map(|_| {
                let started = Instant::now();
                drop(Engine::start(LOGTO_SCRIPT, ScriptLimits::default()).unwrap());
                started.elapsed()
            })
            .collect();
        starts.sort();
        println!("engine rebuild: p50 {:?}  p99 {:?}", at(&starts, 50), at(&starts, 99));

        // What a fresh context per call would add on top of the call itself, with and without the
        // hardening of built-ins: the price of isolating every call from the previous one.
        let runtime = Runtime::new().unwrap();
        let clock = Arc::new(Clock::new());
        for hardened in [false, true] {
            let mut fresh: Vec<_> = (0..2_000)
                .map(|_| {
                    let started = Instant::now();
                    let context = Context::custom::<Intrinsics>(&runtime).unwrap();
                    context.with(|ctx| {
                        if hardened {
                            harden(&ctx, &clock).unwrap();
                        }
                        load(&ctx, LOGTO_SCRIPT, &clock).unwrap();
                    });
                    drop(context);
                    runtime.run_gc();
                    started.elapsed()
                })
                .collect();
            fresh.sort();
            println!(
                "fresh context + evaluation + teardown (hardened: {hardened}): p50 {:?}  p99 {:?}",
                at(&fresh, 50),
                at(&fresh, 99)
            );
        }
    }
}
