"""Black-box tests of CURVE authentication (issue 13): `cisweep keygen`, a coordinator with
--curve-key and --allow-keys (a ZAP handler admitting only listed worker public keys, reloaded on
SIGHUP), workers with --curve-key/--server-key, real pyzmq strangers with and without CURVE, and
the loopback-only rule without keys. Assertions on the DB (read-only), exit statuses and logs."""
import json, os, signal, stat, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, main, wait_for, run, CISWEEP, free_port  # noqa: E402
from sweeplib import Sweep  # noqa: E402


def keys(s, *names):
    kd = os.path.join(s.dir, "keys")
    os.makedirs(os.path.join(kd, "workers"), exist_ok=True)
    out = run([CISWEEP, "keygen", *[os.path.join(kd, n) for n in names]]).stdout
    assert out.count("written") == len(names), out
    return kd


def pub(path):
    for ln in open(path):
        if ln.startswith("public-key"):
            return ln.split("=", 1)[1].strip()
    raise AssertionError(f"no public-key in {path}")


def sec(path):
    for ln in open(path):
        if ln.startswith("secret-key"):
            return ln.split("=", 1)[1].strip()
    raise AssertionError(f"no secret-key in {path}")


def curve_coordinator(s, kd):
    return s.start_coordinator("--curve-key", os.path.join(kd, "coordinator.key"),
                               "--allow-keys", os.path.join(kd, "workers"))


def curve_worker(s, kd, keyfile, name):
    return s.start_worker("--curve-key", keyfile, "--server-key", os.path.join(kd, "coordinator.pub"), name=name)


def log_of(p):
    return open(p.logpath).read()


def coord_logs(s):
    return "".join(open(os.path.join(s.dir, f)).read() for f in sorted(os.listdir(s.dir)) if f.startswith("coordinator-"))


@test
def keygen_writes_a_private_secret_and_refuses_to_overwrite():
    with Sweep(1) as s:
        kd = keys(s, "coordinator")
        k = os.path.join(kd, "coordinator.key")
        assert stat.S_IMODE(os.stat(k).st_mode) == 0o600
        assert pub(k) == pub(os.path.join(kd, "coordinator.pub")) and len(pub(k)) == 40 and len(sec(k)) == 40
        p = run([CISWEEP, "keygen", os.path.join(kd, "coordinator")], check=False)
        assert p.returncode == 1 and "never overwrites" in p.stderr, p.stderr


@test
def listed_worker_works_unknown_worker_gets_nothing_until_listed_and_sighup():
    with Sweep(40, {"sleep_ms": 100}) as s:
        kd = keys(s, "coordinator", "workers/w1", "w2")
        s.launch()
        c = curve_coordinator(s, kd)
        stranger = curve_worker(s, kd, os.path.join(kd, "w2.key"), "w2")
        time.sleep(1.5)
        assert s.q("SELECT count(*) FROM attempts")[0][0] == 0, "an unknown key got jobs"
        assert s.q("SELECT count(*) FROM workers")[0][0] == 0
        assert s.q("SELECT count(*) FROM events WHERE kind NOT IN ('coordinator_start', 'launch')")[0][0] == 0
        log = coord_logs(s)
        assert "denied a connection from 127.0.0.1" in log and "not in the allow-list" in log, log[-2000:]
        assert pub(os.path.join(kd, "w2.pub")) in log
        assert "allow-list" in log_of(stranger)  # the worker says what to check
        w1 = curve_worker(s, kd, os.path.join(kd, "workers", "w1.key"), "w1")
        wait_for(lambda: s.count("done") >= 5, 20, what="the listed worker working")
        # list the second key and reload: it is admitted without a restart of anything
        os.rename(os.path.join(kd, "w2.pub"), os.path.join(kd, "workers", "w2.pub"))
        c.send_signal(signal.SIGHUP)
        s.wait_finished(40)
        assert s.count("done") == 40
        assert c.poll() is None, "SIGHUP must reload, not stop"
        assert "reloaded: 2 worker keys (was 1)" in coord_logs(s)
        assert s.q("SELECT count(DISTINCT worker_id) FROM attempts")[0][0] == 2, "the admitted worker got no job"
        assert w1.poll() is None and stranger.poll() is None
        s.exactly_once()


@test
def strangers_frames_never_change_the_database():
    import zmq
    with Sweep(3, {"sleep_ms": 3000}) as s:
        kd = keys(s, "coordinator", "workers/w1", "rogue")
        s.launch()
        curve_coordinator(s, kd)
        curve_worker(s, kd, os.path.join(kd, "workers", "w1.key"), "w1")
        wait_for(lambda: s.count("leased") >= 1, 10, what="a lease")
        job, att = s.q("SELECT id, attempt FROM jobs WHERE state='leased' LIMIT 1")[0]
        before = s.q("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM workers), "
                     "(SELECT count(*) FROM results), (SELECT count(*) FROM attempts)")[0]
        ctx = zmq.Context()
        peers = []
        for curve_key in (None, "rogue"):
            d = ctx.socket(zmq.DEALER)
            d.setsockopt(zmq.LINGER, 0)
            d.setsockopt(zmq.ROUTING_ID, b"w1-impostor")
            if curve_key:  # a CURVE client with a key nobody listed
                d.curve_serverkey = pub(os.path.join(kd, "coordinator.pub")).encode()
                d.curve_publickey = pub(os.path.join(kd, "rogue.key")).encode()
                d.curve_secretkey = sec(os.path.join(kd, "rogue.key")).encode()
            d.connect(s.ep)
            hello = {"worker": "w1-impostor", "host": "x", "device": "cpu", "version": "x", "slots": 8}
            # without a blocking send: once the coordinator has refused the handshake the DEALER has
            # no pipe left and a blocking send would wait forever (seen on a loaded machine); a frame
            # that cannot even be queued changes nothing either
            for frames in ([b"", b"CISW1", b"HELLO", json.dumps(hello).encode()],
                           [b"", b"CISW1", b"RESULT",
                            json.dumps({"job": job, "attempt": att, "rows": {"forged": 1}}).encode()]):
                try:
                    d.send_multipart(frames, flags=zmq.NOBLOCK)
                except zmq.Again:
                    pass
            peers.append(d)
        time.sleep(1.0)
        for d in peers:
            assert not d.poll(10), "a stranger got an answer"
            d.close()
        ctx.term()
        after = s.q("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM workers), "
                    "(SELECT count(*) FROM results), (SELECT count(*) FROM attempts)")[0]
        # only the real worker's own progress may have changed the DB meanwhile: no row names the strangers
        assert s.q("SELECT count(*) FROM workers WHERE id='w1-impostor'")[0][0] == 0
        assert s.q("SELECT count(*) FROM events WHERE worker_id='w1-impostor'")[0][0] == 0
        assert s.q("SELECT count(*) FROM results WHERE metric='forged'")[0][0] == 0
        assert after[1] == before[1] and after[3] >= before[3], (before, after)
        s.wait_finished(30)
        assert s.count("done") == 3


@test
def without_keys_only_a_local_endpoint_unless_insecure_bind_any():
    with Sweep(1) as s:
        s.launch()
        anyep = f"tcp://0.0.0.0:{free_port()}"
        p = run([CISWEEP, "coordinator", "--db", s.db, "--bind", anyep], check=False, timeout=10)
        assert p.returncode == 2, (p.returncode, p.stderr)
        assert "without CURVE keys" in p.stderr and "--insecure-bind-any" in p.stderr and "keygen" in p.stderr, p.stderr
        kd = keys(s, "coordinator")
        p = run([CISWEEP, "coordinator", "--db", s.db, "--bind", anyep, "--curve-key",
                 os.path.join(kd, "coordinator.key")], check=False, timeout=10)
        assert p.returncode == 2 and "--allow-keys" in p.stderr, p.stderr
        c = s.start_coordinator("--insecure-bind-any")  # sweeplib binds 127.0.0.1: local, says so
        s.start_worker()
        s.wait_finished(20)
        assert "serving unauthenticated on a local endpoint only" in coord_logs(s)
        c.send_signal(signal.SIGTERM)
        c.wait()
        log = open(os.path.join(s.dir, "insecure.log"), "w")
        import subprocess
        q = subprocess.Popen([CISWEEP, "coordinator", "--db", s.db, "--bind", anyep, "--insecure-bind-any"],
                             stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: "NO AUTHENTICATION" in open(log.name).read(), 10, what="the warning")
        q.send_signal(signal.SIGTERM)
        assert q.wait(timeout=10) == 0


@test
def deploy_script_lays_out_keys_that_work_together():
    from harness import ROOT
    with Sweep(6, {"sleep_ms": 10}) as s:
        kd = os.path.join(s.dir, "cluster-keys")
        out = run(["bash", os.path.join(ROOT, "deploy", "curve-keys.sh"), kd, "gpu1", "gpu2"]).stdout
        assert "--allow-keys" in out
        assert sorted(os.listdir(os.path.join(kd, "workers"))) == ["gpu1.pub", "gpu2.pub"]
        assert stat.S_IMODE(os.stat(os.path.join(kd, "private", "gpu1.key")).st_mode) == 0o600
        s.launch()
        s.start_coordinator("--curve-key", os.path.join(kd, "coordinator.key"), "--allow-keys",
                            os.path.join(kd, "workers"))
        s.start_worker("--curve-key", os.path.join(kd, "private", "gpu2.key"), "--server-key",
                       os.path.join(kd, "coordinator.pub"))
        s.wait_finished(20)
        assert s.count("done") == 6


if __name__ == "__main__":
    main()
