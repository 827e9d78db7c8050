"""Files a run writes: atomic writes (a file is whole or absent), writable folders, and the lock that keeps two runs
from writing the same results (what the result files hold is results.py's)."""
import fcntl
import os
import pickle
import tempfile
from pathlib import Path

from plumbing.utils import UserError


def atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.' + path.name + '.', suffix='.tmp')
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are shared as any file the user writes
        with os.fdopen(fd, 'wb') as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def save_pickle(path: Path, obj) -> None:
    """Pickle `obj` to `path` atomically."""
    atomic_write(path, lambda f: pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL))


def ensure_writable_dir(folder: Path, what: str) -> None:
    """Create `folder` if needed and check that files can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f'cannot write {what} to {folder}: {e.strerror or e}') from None


class OutputLock:
    """An exclusive lock on a results file for the life of a run, so that two runs never write the same results: a
    hidden .<name>.lock beside it, removed at the end (and released by the kernel however the process ends)."""

    def __init__(self, output: Path):
        self.path = Path(output).parent / f'.{Path(output).name}.lock'
        self.output = output
        self._fd = None

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:  # the holder before us may have removed the file between our open and our lock: then retry
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f'{os.getpid()}\n'.encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Remove the lock file, then let go (in this order, so that nobody locks a file that is going away)."""
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        if not self.acquire():
            try:
                holder = f' (pid {self.path.read_text().strip()})'
            except OSError:
                holder = ''
            raise UserError(f'{self.output} is being written by another run{holder}')
        return self

    def __exit__(self, *exc) -> None:
        self.release()
