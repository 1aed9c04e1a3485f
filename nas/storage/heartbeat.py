"""Heartbeats of running trials and the sweep that fails (and re-queues) trials whose process died.

Optuna 5's JournalStorage has no heartbeat, so nas keeps its own: `trial_heartbeat` stamps the trial's
system attr `nas:heartbeat`, `fail_stale_trials` fails RUNNING trials whose stamp is older than the grace
period and queues a retry. Optuna's own heartbeat runs only inside `study.optimize`; `trial_heartbeat`
covers ask/tell loops for both kinds, so an objective may always wrap its body in it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from nas.record import read, read_heartbeat, write_heartbeat

# seconds between heartbeats of a running trial, and silence after which it is failed (and retried);
# the environment variables exist for tests that kill a worker and should not wait a minute
HEARTBEAT_INTERVAL = int(os.environ.get("NAS_HEARTBEAT_INTERVAL", 20))
GRACE_PERIOD = int(os.environ.get("NAS_GRACE_PERIOD", 60))
MAX_RETRY = 2  # retries of a trial whose process died


def _uses_own_heartbeat(storage: BaseStorage) -> bool:
    return isinstance(storage, JournalStorage)


@contextlib.contextmanager
def trial_heartbeat(trial: optuna.Trial, interval: float = HEARTBEAT_INTERVAL) -> Iterator[None]:
    """Beat for a running trial while the block runs (journal storages; RDB storages outside optimize).

    Inside `study.optimize` an RDB storage already beats; beating twice is harmless.
    """
    storage = trial.storage
    trial_id = trial._trial_id
    if _uses_own_heartbeat(storage):

        def beat() -> None:
            write_heartbeat(storage, trial_id, time.time())
    elif is_heartbeat_enabled(storage):

        def beat() -> None:
            storage.record_heartbeat(trial_id)
    else:
        yield
        return

    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                beat()
            except Exception:  # noqa: BLE001 - the trial finished or the storage went away: stop beating
                return
            if stop.wait(interval):
                return

    beat()
    thread = threading.Thread(target=loop, name=f"nas-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale_trials(study: optuna.Study, grace_period: float = GRACE_PERIOD) -> list[int]:
    """Fail RUNNING trials whose process stopped beating and queue retries; returns their numbers.

    Journal storages: trials carrying `nas:heartbeat` older than `grace_period` (trials that never beat
    are left alone). RDB storages: Optuna's own sweep (which `study.optimize` also runs before each trial).
    """
    storage = study._storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if not _uses_own_heartbeat(storage):
            before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
            optuna.storages.fail_stale_trials(study)
            after = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            return sorted(t.number for t in after if t.number not in before)

        now = time.time()
        beats = [(t, read_heartbeat(t)) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        stale = [t for t, beat in beats if beat is not None and now - beat > grace_period]
        return _fail_and_retry(study, stale)


def fail_dead_trials(study: optuna.Study, one_process: bool) -> list[int]:
    """Fail at once (and queue retries of) RUNNING trials whose process is gone; returns their numbers.

    With a one-process storage (SQLite) every RUNNING trial left by another process is dead. Elsewhere a
    trial whose recorded host is this machine and whose recorded pid no longer runs is dead; trials of other
    machines are left to the heartbeat sweep.
    """
    host, me = socket.gethostname(), os.getpid()
    dead = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        r = read(t)
        if r.host == host and r.pid == me:
            continue  # this process's own trial
        if one_process or (r.host == host and r.pid is not None and not process_alive(r.pid)):
            dead.append(t)
    return _fail_and_retry(study, dead)


def process_alive(pid: int) -> bool:
    """True while a process with this id runs on this machine (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _fail_and_retry(study: optuna.Study, trials: list) -> list[int]:
    """Mark these RUNNING trials failed and queue each for a retry (at most MAX_RETRY times)."""
    storage = study._storage
    failed = []
    for t in trials:
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                failed.append(t._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        numbers = []
        for trial_id in failed:
            frozen = storage.get_trial(trial_id)
            retry(study, frozen)
            numbers.append(frozen.number)
    return sorted(numbers)
