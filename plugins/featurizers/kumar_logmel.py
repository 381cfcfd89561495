"""``plugins.kumar_logmel``: Kumar et al.'s front end, mel power in dB (sources of each choice:
:mod:`esc50.plugins.featurizers.dbmel`)."""

from __future__ import annotations

from esc50 import TaskConfig, hookimpl
from esc50.plugins.featurizers.dbmel import DbMel

ESC50_PLUGIN_API = 4


class KumarLogMel(DbMel):
    """Kumar et al.'s front end: 128 bands up to Nyquist, hop 512 at 44.1 kHz, dB (top_db 80)."""

    name = "kumar_logmel"

    def __init__(self, config: TaskConfig, n_fft: int = 1024, win_length: int = 1024,
                 hop_length: int = 512, n_mels: int = 128, f_min: float = 0.0,
                 f_max: float = 0.0, top_db: float = 80.0) -> None:
        super().__init__(config, n_fft, win_length, hop_length, n_mels, f_min, f_max, top_db)


@hookimpl
def register_featurizers(register):
    register(KumarLogMel)
