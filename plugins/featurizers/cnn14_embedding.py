"""``plugins.cnn14_embedding``: PANNs CNN14's embedding for linear probing (sources of each choice:
:mod:`esc50.plugins.featurizers.embedding`)."""

from __future__ import annotations

from esc50 import hookimpl
from esc50.plugins.featurizers.embedding import PublishedEmbedding
from esc50.plugins.featurizers.panns_logmel import PannsLogMel
from esc50.plugins.models.cnn14 import Cnn14

ESC50_PLUGIN_API = 4


class Cnn14Embedding(PublishedEmbedding):
    """PANNs CNN14's 2048-dimensional embedding (after fc1) of panns_logmel features."""

    name = "cnn14_embedding"
    front_end_type, backbone_type, embedding_size = PannsLogMel, Cnn14, 2048


@hookimpl
def register_featurizers(register):
    register(Cnn14Embedding)
