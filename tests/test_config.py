import pytest

from esc50.core.config import TaskConfig, load_config, save_config
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.registry import load_registry


def test_defaults_are_the_reports():
    c = TaskConfig()
    assert (c.batch_size, c.learning_rate, c.weight_decay, c.num_epochs) == (128, 3e-4, 1e-5, 20)
    assert (c.num_classes, c.sample_rate, c.length_wav) == (None, None, None)  # the dataset's
    esc50 = c.for_dataset([f"class{i}" for i in range(50)], 44_100, 5.0)  # ESC-50's defaults
    assert (esc50.num_classes, esc50.sample_rate, esc50.train_ratio) == (50, 44100, 0.9)
    assert esc50.length_wav == 220500
    assert c.override(sample_rate=16000).for_dataset(["a"], 44_100, 4.0).length_wav == 64000
    logmel = load_registry().create("featurizer", c.featurizer, esc50)  # the report's STFT
    assert (logmel.settings.n_fft, logmel.settings.win_length, logmel.settings.hop_length,
            logmel.settings.n_mels) == (1024, 1024, 256, 64)
    assert logmel.output_shape(esc50.length_wav) == (1, 64, 862)  # the report's `length`


def test_override_converts_command_line_strings():
    c = TaskConfig().override(num_epochs="128", amp="false", learning_rate="1e-3",
                              audio_cache="none", augs="noise,volume:p=1")
    assert c.num_epochs == 128 and c.amp is False and c.learning_rate == 1e-3
    assert c.audio_cache is None and c.augs == ["noise", "volume:p=1"]


def test_the_report_recipe_keeps_the_reports_names_and_values():
    from esc50.core.config import recipe_path
    c = load_config(recipe_path("report"))
    assert (c.batch_size, c.learning_rate, c.num_epochs) == (128, 3e-4, 10)
    assert c.options["plugins.logmel"] == {"n_mels": 64, "n_fft": 1024, "win_length": 1024,
                                           "hop_length": 256}
    shape = load_registry().create("featurizer", c.featurizer, c).output_shape(c.length_wav)
    assert shape == (1, 64, 862)  # the report's n_mels and `length`
    assert c.options["plugins.crnn"] == {"cnn_out_channels": 8, "kernel_size": [5, 20],
                                         "stride": [2, 8], "hidden_size": 64,
                                         "gru_num_layers": 2, "bidirectional": False}
    crnn = load_registry().create("model", c.model, c, shape)
    assert (crnn.conv.kernel_size, crnn.conv.stride, crnn.conv.out_channels) == (
        (5, 20), (2, 8), 8)
    assert (crnn.gru.hidden_size, crnn.gru.num_layers, crnn.gru.bidirectional) == (64, 2, False)


def test_plugin_options_from_tables_set_and_specs_in_that_order(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('model = "crnn"\nnum_classes = 50\n[plugins.crnn]\nhidden_size = 16\ngru_num_layers = 1\n')
    config = load_config(path, **{"plugins.crnn.gru_num_layers": "3"})
    assert config.options == {"plugins.crnn": {"hidden_size": 16, "gru_num_layers": "3"}}
    save_config(config, tmp_path / "again.toml")
    assert load_config(tmp_path / "again.toml") == config
    registry = load_registry()
    model = registry.create("model", "crnn:hidden_size=8", config, (1, 64, 862))
    assert (model.gru.hidden_size, model.gru.num_layers) == (8, 3)  # spec, then --set, then table
    with pytest.raises(Esc50Error, match="option gru_num_layers='x' is not a valid int"):
        registry.create("model", "crnn:gru_num_layers=x", config, (1, 64, 862))
    typo = config.override(options={"plugins.crnm": {"hidden_size": 8}})
    with pytest.raises(Esc50Error, match="options for 'plugins.crnm', which no plugin provides; "
                                         "did you mean plugins.crnn"):
        registry.typed_options(typo)


def test_an_options_table_by_short_name_is_the_plugins_table_whatever_the_spec_says():
    """``[noise]`` is plugins.noise's table whether the run names it noise or plugins.noise:
    one lookup rule (the same option given two ways differently is refused)."""
    registry = load_registry()
    config = TaskConfig().override(num_classes=4, sample_rate=8000, length_wav=8000,
                                   options={"noise": {"min_snr_db": 7}})
    for spec in ("noise", "plugins.noise"):
        assert registry.choose("augmentation", spec, config).options["min_snr_db"] == 7
    typed = registry.typed_options(config)
    assert typed.options == {"plugins.noise": {"min_snr_db": 7.0}}
    both = config.override(options={"noise": {"min_snr_db": 7},
                                    "plugins.noise": {"min_snr_db": 9}})
    with pytest.raises(Esc50Error, match="gives plugins.noise option min_snr_db twice"):
        registry.typed_options(both)
    with pytest.raises(Esc50Error, match="'hidden_size' is an option of plugins.crnn, "
                                         "plugins.lstm"):
        TaskConfig().override(hidden_size=3)


@pytest.mark.parametrize("changes, message", [
    ({"batch_sise": 3}, "unknown config key 'batch_sise' (did you mean batch_size"),
    ({"batch_size": 0}, "batch_size=0 must be positive"),
    ({"n_mels": 128}, "config key 'n_mels' is an option of plugins.logmel, plugins.mfcc now: "
                      "set it with --set plugins.logmel.n_mels=VALUE"),
    ({"split": "folds"}, "split='folds' must be"),
    ({"num_epochs": "many"}, "num_epochs='many': expected int"),
    ({"train_ratio": 1.5}, "train_ratio=1.5"),
])
def test_bad_settings_give_one_line_errors(changes, message):
    with pytest.raises(Esc50Error, match=message.replace("(", r"\(").replace("'", "'")) as info:
        TaskConfig().override(**changes)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec, message", [
    ("plugins.logmel:n_mels=600", "featurizer plugins.logmel: n_mels=600 exceeds the n_fft // 2 "
                                  "+ 1 = 513 frequency bins"),
    ("plugins.logmel:win_length=2048", "featurizer plugins.logmel: win_length=2048 exceeds "
                                       "n_fft=1024"),
    ("plugins.mfcc:hop_length=0", "featurizer plugins.mfcc: hop_length=0 must be positive"),
    ("plugins.logmel:n_fft=4096", "featurizer plugins.logmel: a clip (length_wav=2000 samples) is "
                                  "shorter than one analysis window (n_fft=4096)"),
    ("plugins.logmel:n_mels=many", "option n_mels='many' is not a valid int"),
])
def test_bad_featurizer_options_give_one_line_errors(spec, message):
    config = TaskConfig().override(sample_rate=8000, length_wav=2000, num_classes=2)
    with pytest.raises(Esc50Error, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+")) as info:
        load_registry().create("featurizer", spec, config)
    assert "\n" not in str(info.value)


def test_toml_round_trip(tmp_path):
    c = TaskConfig().override(num_epochs=96, augs=["noise:p=0.3"], seed=7,
                              options={"plugins.crnn": {"kernel_size": [3, 7]},
                                       "plugins.logmel": {"n_mels": 40}})
    path = tmp_path / "config.toml"
    save_config(c, path)
    assert load_config(path) == c


def test_yaml_file_with_command_line_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("num_epochs: 40\nbatch_size: 32\naugs: [noise]\nplugins:\n  logmel:\n"
                    "    n_mels: 40\n")
    c = load_config(path, batch_size=8)
    assert (c.num_epochs, c.batch_size, c.augs) == (40, 8, ["noise"])
    assert c.options == {"plugins.logmel": {"n_mels": 40}}


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("n_mels = [\n")
    with pytest.raises(Esc50Error, match=str(path)):
        load_config(path)
    path.write_text("colour = 3\n")
    with pytest.raises(Esc50Error, match="unknown config key 'colour'"):
        load_config(path)
    with pytest.raises(Esc50Error, match=r"config file .*missing.toml does not exist"):
        load_config(tmp_path / "missing.toml")


def test_set_takes_a_list_as_toml_writes_it_with_quoted_specs():
    """``--set augs=[...]`` as TOML writes a list: quoted specs keep the commas of their
    options; the CLI hands the API the typed list, as ``--aug`` does."""
    from esc50.cli.options import config_arguments

    given = config_arguments(None, (), ('augs=["gaussian:p=0.5,min_std=0.01", "volume"]',
                                        "ignore_folds=[1, 3]", "plugins.crnn.hidden_size=7"),
                             False, {})
    assert given["augs"] == ["gaussian:p=0.5,min_std=0.01", "volume"]
    assert given["ignore_folds"] == [1, 3] and given["plugins.crnn.hidden_size"] == "7"
    assert TaskConfig().override(augs="[noise, gaussian]").augs == ["noise", "gaussian"]
