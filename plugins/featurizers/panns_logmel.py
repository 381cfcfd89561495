"""``plugins.panns_logmel``: PANNs' front end, mel power in dB (sources of each choice:
:mod:`esc50.plugins.featurizers.dbmel`)."""

from __future__ import annotations

from esc50 import TaskConfig, hookimpl
from esc50.plugins.featurizers.dbmel import DbMel

ESC50_PLUGIN_API = 4


class PannsLogMel(DbMel):
    """PANNs' front end (CNN14 and its family): 64 bands, 50-14 000 Hz, hop 320 at 32 kHz.

    Its defaults only differ from ``KumarLogMel``'s; the options are ``DbMel``'s."""

    name = "panns_logmel"

    def __init__(self, config: TaskConfig, n_fft: int = 1024, win_length: int = 1024,
                 hop_length: int = 320, n_mels: int = 64, f_min: float = 50.0,
                 f_max: float = 14000.0, top_db: float = 0.0) -> None:
        super().__init__(config, n_fft, win_length, hop_length, n_mels, f_min, f_max, top_db)


@hookimpl
def register_featurizers(register):
    register(PannsLogMel)
