import pytest

from esc50.core.config import TaskConfig, load_config, save_config
from esc50.core.errors import Esc50Error


def test_defaults_are_the_reports():
    c = TaskConfig()
    assert (c.batch_size, c.learning_rate, c.weight_decay, c.num_epochs) == (128, 3e-4, 1e-5, 20)
    assert (c.n_mels, c.cnn_out_channels, c.kernel_size, c.stride) == (64, 8, (5, 20), (2, 8))
    assert (c.hidden_size, c.gru_num_layers, c.bidirectional, c.num_classes) == (64, 2, False, 50)
    assert (c.sample_rate, c.n_fft, c.win_length, c.hop_length) == (44100, 1024, 1024, 256)
    assert (c.train_ratio, c.length_wav, c.length) == (0.9, 220500, 862)


def test_override_converts_command_line_strings():
    c = TaskConfig().override(n_mels="128", bidirectional="true", kernel_size="3,9",
                              learning_rate="1e-3", path2noise="none", augs="noise")
    assert c.n_mels == 128 and c.bidirectional is True and c.kernel_size == (3, 9)
    assert c.learning_rate == 1e-3 and c.path2noise is None and c.augs == ["noise"]


@pytest.mark.parametrize("changes, message", [
    ({"n_mel": 3}, "unknown config key 'n_mel' (did you mean n_mels"),
    ({"batch_size": 0}, "batch_size=0 must be positive"),
    ({"n_mels": 600}, "n_mels=600 exceeds"),
    ({"split": "folds"}, "split='folds' must be"),
    ({"n_mels": "many"}, "n_mels='many': expected int"),
    ({"train_ratio": 1.5}, "train_ratio=1.5"),
])
def test_bad_settings_give_one_line_errors(changes, message):
    with pytest.raises(Esc50Error, match=message.replace("(", r"\(").replace("'", "'")) as info:
        TaskConfig().override(**changes)
    assert "\n" not in str(info.value)


def test_toml_round_trip(tmp_path):
    c = TaskConfig().override(n_mels=96, augs=["noise:p=0.3"], kernel_size=(3, 7), seed=7)
    path = tmp_path / "config.toml"
    save_config(c, path)
    assert load_config(path) == c


def test_yaml_file_with_command_line_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("n_mels: 40\nbatch_size: 32\naugs: [noise]\n")
    c = load_config(path, batch_size=8)
    assert (c.n_mels, c.batch_size, c.augs) == (40, 8, ["noise"])


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("n_mels = [\n")
    with pytest.raises(Esc50Error, match=str(path)):
        load_config(path)
    path.write_text("colour = 3\n")
    with pytest.raises(Esc50Error, match="unknown config key 'colour'"):
        load_config(path)
    with pytest.raises(Esc50Error, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")
