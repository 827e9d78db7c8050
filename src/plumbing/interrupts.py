"""Stopping a run cleanly: Ctrl-C (SIGINT) and Slurm's time-limit and preemption signals (SIGTERM, SIGUSR1) become an
exception once what is being saved is saved; the run's checkpoint then resumes it (run.py --resume)."""
import contextlib
import signal

INTERRUPTED_EXIT = 3  # exit status of a run stopped by SIGTERM/SIGUSR1 after saving: --resume continues it
CTRL_C_EXIT = 130  # after Ctrl-C, the shell's convention (128 + SIGINT)


class Interrupted(Exception):
    """Ctrl-C, or SIGTERM or SIGUSR1 (Slurm's time-limit and preemption signals), arrived; what was finished is
    saved."""

    def __init__(self, message: str, signal_name: str = 'SIGTERM'):
        super().__init__(message)
        self.signal_name = signal_name

    @property
    def exit_status(self) -> int:
        """CTRL_C_EXIT after Ctrl-C, INTERRUPTED_EXIT after Slurm's signals (which run.sbatch requeues on)."""
        return CTRL_C_EXIT if self.signal_name == 'SIGINT' else INTERRUPTED_EXIT


class SignalGuard:
    """Within `with`, SIGINT, SIGTERM and SIGUSR1 raise Interrupted, except inside hold(), which delays them to its
    end so that a checkpoint or a result being written is never cut in half."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.pending = None
        self.holding = 0
        self.previous = {}

    def __enter__(self):
        with contextlib.suppress(ValueError):  # signal handlers can only be set from the main thread
            self.previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handler(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.holding:
            self.pending = name
        else:
            raise Interrupted(name, name)

    @contextlib.contextmanager
    def hold(self):
        """Delay the signals' effect to the end of the block."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
        if not self.holding and self.pending:
            name, self.pending = self.pending, None
            raise Interrupted(name, name)
