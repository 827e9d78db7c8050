"""hat-test: HAT with the monitoring of the paper's analysis on (the original's hat_test): per-epoch losses,
accuracies, regularisers and the masks of every epoch, saved with the cumulative masks to logs/ after every task.
As the original, the embeddings start from U(0, 2) on alexnet_hat (its alexnet_hat_test network) unless --emb-init
says otherwise, and --parameter takes lamb,smax,logpath,single_task (or a log path alone)."""
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from approaches import hat
from plumbing import hparams
from plumbing.hparams import like


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


class Appr(hat.Appr):
    """HAT with --monitor on."""

    @dataclass
    class Hyper(hat.Appr.Hyper):
        monitor: bool = like(hat.Appr.Hyper, 'monitor', True)
        monitor_path: Path | None = like(hat.Appr.Hyper, 'monitor_path', None, legacy=True)
        emb_init: str | None = like(hat.Appr.Hyper, 'emb_init', None)  # None: as the original, by network
        single_task: bool = like(hat.Appr.Hyper, 'single_task', False, legacy=True)

    @classmethod
    def parse_parameter(cls, values: list[str]) -> dict:
        """The original's form: lamb and smax where numeric, a log path where not, then single_task (0/1)."""
        if len(values) == 1:
            return {'monitor_path': Path(values[0])}
        if len(values) > 4:
            raise ValueError('takes lamb,smax[,logpath[,single_task]] or logpath')
        settings = {}
        for name, value in zip(('lamb', 'smax'), values):
            if _is_number(value):
                settings[name] = hparams.parse_value(cls.Hyper, name, value)
            else:
                settings['monitor_path'] = Path(value)
        if len(values) > 2 and not _is_number(values[2]):
            settings['monitor_path'] = Path(values[2])
        if len(values) > 3:
            if not (_is_number(values[3]) and float(values[3]) in (0, 1)):
                raise ValueError(f"single_task must be 0 or 1, got '{values[3]}'")
            settings['single_task'] = float(values[3]) == 1
        return settings

    @classmethod
    def settle(cls, hp, network_cls: type):
        """emb_init by network where not given: its module's EMB_INIT, 'normal' where it declares none (the original's
        alexnet_hat_test drew U(0, 2), its mlp_hat N(0, 1): networks/__init__.py)."""
        if hp.emb_init is None:
            network = sys.modules[network_cls.__module__]
            hp = dataclasses.replace(hp, emb_init=getattr(network, 'EMB_INIT', 'normal'))
        return hp

    def __init__(self, model, hp: Hyper | None = None, *args, **kwargs):
        super().__init__(model, self.settle(hp or self.Hyper(), type(model)), *args, **kwargs)
