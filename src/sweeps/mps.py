"""NVIDIA's Multi-Process Service for the runs of a sweep that share a GPU (the local backend's --mps; on Slurm,
scripts/run.sbatch starts it in each array task)."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from plumbing import utils


MPS_CONTROL = 'nvidia-cuda-mps-control'


class MPSDaemons:
    """NVIDIA's Multi-Process Service for the runs sharing each GPU: one control daemon per GPU, its pipes and log in
    a temporary folder, stopped at the end. Without MPS, processes on one GPU take turns (time slices); with it,
    their kernels run side by side, which pays when each run alone leaves the GPU mostly idle."""

    def __init__(self, gpus: list[str]):
        self.gpus = gpus
        self.folders = {}  # GPU -> its daemon's folder (pipe/ and log/), for the GPUs whose daemon started
        self.tmp = None

    def __enter__(self):
        if shutil.which(MPS_CONTROL) is None:
            print(f'--mps: {MPS_CONTROL} is not installed here (it comes with the NVIDIA driver): running without '
                  f'MPS')
            return self
        self.tmp = tempfile.TemporaryDirectory(prefix='hat-mps-')
        for gpu in self.gpus:
            folder = Path(self.tmp.name) / f'gpu{gpu}'
            for sub in ('pipe', 'log'):
                (folder / sub).mkdir(parents=True)
            try:  # the daemon serves the GPUs visible to it: this one alone
                proc = subprocess.run([MPS_CONTROL, '-d'], env={**os.environ, 'CUDA_VISIBLE_DEVICES': gpu,
                                                                **self._variables(folder)},
                                      capture_output=True, text=True, timeout=60)
                said = (proc.stderr or proc.stdout).strip()
                problem = (None if proc.returncode == 0 else said.splitlines()[0] if said else
                           f'status {proc.returncode}')
            except (OSError, subprocess.TimeoutExpired) as e:
                problem = utils.first_line(e)
            if problem is not None:
                print(f'--mps: the MPS control daemon did not start for GPU {gpu} ({problem}): its runs go without '
                      f'MPS')
                continue
            self.folders[gpu] = folder
        if self.folders:
            print(f"MPS control daemons for GPU {', '.join(self.folders)} (pipes and logs in {self.tmp.name})")
        return self

    @staticmethod
    def _variables(folder: Path) -> dict:
        return {'CUDA_MPS_PIPE_DIRECTORY': str(folder / 'pipe'), 'CUDA_MPS_LOG_DIRECTORY': str(folder / 'log')}

    def client_env(self, gpu: str) -> dict | None:
        """What a run on `gpu` needs in its environment to be a client of that GPU's daemon (None without one)."""
        folder = self.folders.get(gpu)
        return None if folder is None else self._variables(folder)

    def __exit__(self, *exc) -> None:
        running = False
        for gpu, folder in self.folders.items():  # quit waits for the daemon's clients to finish
            try:
                subprocess.run([MPS_CONTROL], input='quit\n', env={**os.environ, **self._variables(folder)},
                               capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired) as e:
                running = True  # its pipes stay, for the command below
                print(f'--mps: the MPS control daemon for GPU {gpu} did not quit ({utils.first_line(e)}); stop it '
                      f'with: echo quit | CUDA_MPS_PIPE_DIRECTORY={folder / "pipe"} {MPS_CONTROL}')
        if self.tmp is not None and not running:
            self.tmp.cleanup()

