"""``plugins.ast_embedding``: the Audio Spectrogram Transformer's embedding for linear probing
(sources of each choice: :mod:`esc50.plugins.featurizers.embedding`)."""

from __future__ import annotations

from esc50 import TaskConfig, hookimpl
from esc50.plugins.featurizers.ast_fbank import ASTFbank
from esc50.plugins.featurizers.embedding import Embedding, published, required
from esc50.plugins.models.ast import AST, checkpoint_config

ESC50_PLUGIN_API = 4


class ASTEmbedding(Embedding):
    """The Audio Spectrogram Transformer's pooled class and distillation tokens of ast_fbank."""

    name = "ast_embedding"

    def __init__(self, config: TaskConfig, source: str = "") -> None:
        """Options:
        source: a directory saved with save_pretrained, or a hub id when online (required)
        """
        settings = checkpoint_config(required("source", source))
        front_end = ASTFbank(config, max_length=settings.max_length,
                             n_mels=settings.num_mel_bins)
        super().__init__(front_end, published(AST, config, front_end, source=source),
                         settings.hidden_size)


@hookimpl
def register_featurizers(register):
    register(ASTEmbedding)
