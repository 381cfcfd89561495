"""``plugins.kumar_embedding``: Kumar et al.'s embedding for linear probing (sources of each choice:
:mod:`esc50.plugins.featurizers.embedding`)."""

from __future__ import annotations

from esc50 import hookimpl
from esc50.plugins.featurizers.embedding import PublishedEmbedding
from esc50.plugins.featurizers.kumar_logmel import KumarLogMel
from esc50.plugins.models.kumar import Kumar

ESC50_PLUGIN_API = 4


class KumarEmbedding(PublishedEmbedding):
    """Kumar et al.'s 1024-value embedding (F1 averaged over time) of kumar_logmel features."""

    name = "kumar_embedding"
    front_end_type, backbone_type, embedding_size = KumarLogMel, Kumar, 1024


@hookimpl
def register_featurizers(register):
    register(KumarEmbedding)
