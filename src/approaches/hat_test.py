"""hat-test: HAT with the monitoring of the paper's analysis on (the original's hat_test): per-epoch losses,
accuracies, regularisers and the masks of every epoch, saved with the cumulative masks to logs/ after every task.
As the original, the embeddings start from U(0, 2) on alexnet_hat (its alexnet_hat_test network) unless --emb-init
says otherwise, and --parameter takes lamb,smax,logpath,single_task (or a log path alone)."""
from pathlib import Path

from approaches import hat


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


class Appr(hat.Appr):
    """HAT with --monitor on."""

    parameter_names = ('lamb', 'smax', 'monitor_path', 'single_task')

    @classmethod
    def add_arguments(cls, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(monitor=True, emb_init=None)

    @classmethod
    def parse_parameter(cls, values: list[str], types: dict) -> dict:
        """The original's form: lamb and smax where numeric, a log path where not, then single_task (0/1)."""
        if len(values) == 1:
            return {'monitor_path': Path(values[0])}
        if len(values) > 4:
            raise ValueError('takes lamb,smax[,logpath[,single_task]] or logpath')
        settings = {}
        for name, value in zip(('lamb', 'smax'), values):
            if _is_number(value):
                settings[name] = float(value)
            else:
                settings['monitor_path'] = Path(value)
        if len(values) > 2 and not _is_number(values[2]):
            settings['monitor_path'] = Path(values[2])
        if len(values) > 3 and _is_number(values[3]):
            settings['single_task'] = bool(int(float(values[3])))
        return settings

    def __init__(self, model, args, device, log):
        if args.emb_init is None:
            args.emb_init = 'uniform' if args.network.startswith('alexnet') else 'normal'
        super().__init__(model, args, device, log)
