//! Listener limits hold across processes on Redis: three consumer
//! processes on one store run a listener with `max_concurrent(2)` and one
//! with `max_concurrent_per_key("tenant", 1)`; each run counts itself in
//! flight with `INCR`/`DECR` and records the most seen (a Lua `max`), which
//! never passes the limit. A listener with `rate(4, 1 s)` records its
//! starts: by `t0 + k × 250 ms` (`t0` taken before any consumer started) at
//! most `k` runs had started — slowness only makes that easier.
//!
//! Then a consumer is killed with `kill -9` while a run of a
//! `max_concurrent(1)` listener holds the slot (the run hangs): two fresh
//! consumers go on once the slot expires (`limit_slot_ttl`, short here)
//! and the killed consumer's delivery is claimed again (a short claim
//! timeout), and their runs still never overlap: a dead holder never keeps
//! a limit full, and its expiry does not let two runs in at once.
//!
//! This binary is its own consumer (started with `SOIREE_LIMITS_CHILD` set).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use soiree::{EventBus, EventContext, ListenerBinding};
use soiree_redis::RedisStore;
use soiree_test::process::{ChildProcess, plain_main};
use support::{RedisServer, eventually};

const CHILD_ENV: &str = "SOIREE_LIMITS_CHILD";
const LIMIT: Duration = Duration::from_secs(120);
const CONCURRENT: i64 = 2;
const ALL_EVENTS: usize = 40;
const KEY_EVENTS: usize = 30;
const RATED_EVENTS: usize = 12;
const RATE_INTERVAL_MS: i64 = 250;
const PROCESSES: usize = 3;
/// The hold listener's slot time to live: a killed holder's slot is free
/// again this long after its last renewal.
const SLOT_TTL: Duration = Duration::from_millis(1500);
/// Short, so that the killed consumer's delivery is soon claimed again.
const CLAIM: Duration = Duration::from_secs(2);

fn main() {
    let Some(runtime) = plain_main("limits_processes") else {
        return;
    };
    if std::env::var(CHILD_ENV).is_ok() {
        runtime.block_on(child());
        return;
    }
    let Some(server) = RedisServer::start_or_skip() else {
        return;
    };
    println!("test limits_processes::redis ...");
    runtime.block_on(limits(&server));
    println!("test result: ok. 1 passed; 0 failed");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// In: INCR now, and the most seen. Out: DECR now. Then the run is recorded.
const ENTER: &str = "local now = redis.call('INCR', KEYS[1])
if now > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], now) end
return now";

async fn child() {
    let url = std::env::var("SOIREE_REDIS_URL").expect("url");
    let prefix = std::env::var("SOIREE_PREFIX").expect("prefix");
    let store = RedisStore::builder(&url)
        .prefix(prefix.clone())
        .consumer(format!("consumer-{}", std::process::id()))
        .claim_timeout(CLAIM)
        .build()
        .await
        .expect("store");
    let conn = redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let bus = EventBus::builder()
        .store(store)
        .workers(4)
        .poll_wait(Duration::from_millis(100))
        .build()
        .expect("bus");
    let enter = redis::Script::new(ENTER);
    for (name, topic, per_key) in [("all", "limit.all", false), ("per-key", "limit.key", true)] {
        let (conn, enter, prefix) = (conn.clone(), enter.clone(), prefix.clone());
        let binding = ListenerBinding::new(topic, move |ctx: EventContext| {
            let (mut conn, enter, prefix) = (conn.clone(), enter.clone(), prefix.clone());
            async move {
                let id = if per_key {
                    ctx.property_str("tenant").unwrap_or_default()
                } else {
                    "all".to_owned()
                };
                let now = format!("{prefix}:now:{id}");
                let _: i64 = enter
                    .key(&now)
                    .key(format!("{prefix}:most:{id}"))
                    .invoke_async(&mut conn)
                    .await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _: i64 = redis::cmd("DECR").arg(&now).query_async(&mut conn).await?;
                let _: i64 = redis::cmd("RPUSH")
                    .arg(format!("{prefix}:done:{name}"))
                    .arg(now_ms())
                    .query_async(&mut conn)
                    .await?;
                Ok(())
            }
        })
        .named(name);
        let binding = if per_key {
            binding.max_concurrent_per_key("tenant", 1)
        } else {
            binding.max_concurrent(u32::try_from(CONCURRENT).unwrap())
        };
        binding.register(&bus).expect("register");
    }
    let (rated, rated_prefix) = (conn.clone(), prefix.clone());
    ListenerBinding::new("limit.rate", move |_ctx: EventContext| {
        let (mut conn, prefix) = (rated.clone(), rated_prefix.clone());
        async move {
            let _: i64 = redis::cmd("RPUSH")
                .arg(format!("{prefix}:done:rated"))
                .arg(now_ms())
                .query_async(&mut conn)
                .await?;
            Ok(())
        }
    })
    .named("rated")
    .rate(4, Duration::from_secs(1))
    .register(&bus)
    .expect("register");
    // The kill: in a process told to hang, a run of "hold" marks that it
    // holds the slot and never ends; elsewhere each run counts itself in
    // flight as above.
    let hang = std::env::var_os("SOIREE_LIMITS_HANG").is_some();
    let (held, held_prefix) = (conn.clone(), prefix.clone());
    ListenerBinding::new("limit.hold", move |_ctx: EventContext| {
        let (mut conn, enter, prefix) = (held.clone(), enter.clone(), held_prefix.clone());
        async move {
            if hang {
                let _: () = redis::cmd("SET")
                    .arg(format!("{prefix}:held"))
                    .arg(1)
                    .query_async(&mut conn)
                    .await?;
                std::future::pending::<()>().await;
            }
            let now = format!("{prefix}:now:hold");
            let _: i64 = enter
                .key(&now)
                .key(format!("{prefix}:most:hold"))
                .invoke_async(&mut conn)
                .await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _: i64 = redis::cmd("DECR").arg(&now).query_async(&mut conn).await?;
            let _: i64 = redis::cmd("RPUSH")
                .arg(format!("{prefix}:done:hold"))
                .arg(now_ms())
                .query_async(&mut conn)
                .await?;
            Ok(())
        }
    })
    .named("hold")
    .max_concurrent(1)
    .limit_slot_ttl(SLOT_TTL)
    .register(&bus)
    .expect("register");
    bus.start().expect("start");
    // Killed by the parent; the bound only guards against an orphan.
    tokio::time::sleep(LIMIT * 2).await;
}

async fn limits(server: &RedisServer) {
    let prefix = format!("limits-{}", std::process::id());
    let store = RedisStore::builder(&server.url())
        .prefix(prefix.clone())
        .consumer("producer")
        .build()
        .await
        .expect("store");
    let emitter = EventBus::builder()
        .store(store)
        .consume(false)
        .build()
        .expect("emitter");
    for n in 0..ALL_EVENTS {
        tokio::time::timeout(LIMIT, emitter.emit("limit.all", n).persisted())
            .await
            .expect("emit in time")
            .expect("emit");
    }
    for n in 0..KEY_EVENTS {
        let event = soiree::Event::new("limit.key", n);
        event.properties().set("tenant", ["a", "b", "c"][n % 3]);
        tokio::time::timeout(LIMIT, emitter.emit("limit.key", event).persisted())
            .await
            .expect("emit in time")
            .expect("emit");
    }
    for n in 0..RATED_EVENTS {
        tokio::time::timeout(LIMIT, emitter.emit("limit.rate", n).persisted())
            .await
            .expect("emit in time")
            .expect("emit");
    }
    let t0 = now_ms();
    let url = server.url();
    let spawn = |hang: bool| {
        let mut command = ChildProcess::command();
        command
            .env(CHILD_ENV, "1")
            .env("SOIREE_REDIS_URL", &url)
            .env("SOIREE_PREFIX", &prefix);
        if hang {
            command.env("SOIREE_LIMITS_HANG", "1");
        }
        ChildProcess::start(&mut command)
    };
    let children: Vec<ChildProcess> = (0..PROCESSES).map(|_| spawn(false)).collect();
    let mut conn = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let done = |name: &str| format!("{prefix}:done:{name}");
    let finished = eventually(LIMIT, || {
        let (mut conn, all, key, rated) =
            (conn.clone(), done("all"), done("per-key"), done("rated"));
        async move {
            let all: i64 = redis::cmd("LLEN")
                .arg(all)
                .query_async(&mut conn)
                .await
                .unwrap_or(0);
            let key: i64 = redis::cmd("LLEN")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap_or(0);
            let rated: i64 = redis::cmd("LLEN")
                .arg(rated)
                .query_async(&mut conn)
                .await
                .unwrap_or(0);
            all >= ALL_EVENTS as i64 && key >= KEY_EVENTS as i64 && rated >= RATED_EVENTS as i64
        }
    })
    .await;
    drop(children);
    assert!(finished, "the limited listeners did not handle every event");
    for (id, bound) in [("all", CONCURRENT), ("a", 1), ("b", 1), ("c", 1)] {
        let now: i64 = redis::cmd("GET")
            .arg(format!("{prefix}:now:{id}"))
            .query_async(&mut conn)
            .await
            .expect("now");
        let most: i64 = redis::cmd("GET")
            .arg(format!("{prefix}:most:{id}"))
            .query_async(&mut conn)
            .await
            .expect("most");
        println!("{id}: in flight now {now}, most {most} (limit {bound})");
        assert_eq!(now, 0, "{id}: runs still counted in flight");
        assert!(
            most <= bound,
            "{id}: {most} runs at once across processes, limit {bound}"
        );
    }
    let mut starts: Vec<i64> = redis::cmd("LRANGE")
        .arg(done("rated"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("starts");
    starts.sort_unstable();
    println!(
        "rated starts after t0: {:?}",
        starts.iter().map(|at| at - t0).collect::<Vec<_>>()
    );
    for (k, at) in starts.iter().enumerate() {
        let earliest = t0 + i64::try_from(k).unwrap() * RATE_INTERVAL_MS;
        assert!(
            *at >= earliest,
            "rated run {k} started {} ms after t0: before t0 + {k} × {RATE_INTERVAL_MS} ms",
            at - t0
        );
    }
    killed_holder(&emitter, &mut conn, &prefix, spawn).await;
    tokio::time::timeout(LIMIT, emitter.close())
        .await
        .expect("close in time")
        .expect("close");
}

/// The kill: a lone consumer's "hold" run hangs holding the one slot;
/// killed with -9, its slot expires and two fresh consumers run the rest
/// (event 0 too, once its claim timeout passes), one at a time.
async fn killed_holder(
    emitter: &EventBus,
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    spawn: impl Fn(bool) -> ChildProcess,
) {
    let mut hanging = spawn(true);
    tokio::time::timeout(LIMIT, emitter.emit("limit.hold", 0).persisted())
        .await
        .expect("emit in time")
        .expect("emit");
    let held = eventually(LIMIT, || {
        let (mut conn, key) = (conn.clone(), format!("{prefix}:held"));
        async move {
            let held: Option<i64> = redis::cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap_or(None);
            held == Some(1)
        }
    })
    .await;
    assert!(held, "the hanging run never started");
    hanging.kill();
    let _survivors: Vec<ChildProcess> = (0..2).map(|_| spawn(false)).collect();
    for n in 1..4 {
        tokio::time::timeout(LIMIT, emitter.emit("limit.hold", n).persisted())
            .await
            .expect("emit in time")
            .expect("emit");
    }
    let recovered = eventually(LIMIT, || {
        let (mut conn, key) = (conn.clone(), format!("{prefix}:done:hold"));
        async move {
            let done: i64 = redis::cmd("LLEN")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap_or(0);
            done >= 4
        }
    })
    .await;
    assert!(recovered, "a killed holder kept the limit full");
    let most: i64 = redis::cmd("GET")
        .arg(format!("{prefix}:most:hold"))
        .query_async(conn)
        .await
        .expect("most");
    println!("hold: most {most} at once after the kill (limit 1)");
    assert_eq!(most, 1, "hold: {most} runs at once after the kill, limit 1");
}
