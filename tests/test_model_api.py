"""The network's public API: config, input checks, outputs, pair, progress, device helpers."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from page4d_viewer.errors import Page4DError
from page4d_viewer.inference.device import autocast_for, choose_device, choose_precision
from page4d_viewer.model import PRESETS, ModelConfig, ModelOutput, Page4D, build_model
from page4d_viewer.model.layers import RankOneBias, attention_with_bias

# A few-layer layout so each forward pass takes milliseconds.
QUERIES = torch.tensor([[3.0, 4.0], [20.0, 10.0], [40.0, 27.0]], dtype=torch.float64)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def assert_outputs_equal(a: ModelOutput, b: ModelOutput) -> None:
    for field in dataclasses.fields(ModelOutput):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if isinstance(left, list):
            assert all(torch.equal(x, y) for x, y in zip(left, right, strict=True)), field.name
        elif isinstance(left, torch.Tensor):
            assert torch.equal(left, right), field.name
        else:
            assert left == right, field.name


# ----------------------------------------------------------------------------- config


def test_presets_exist_and_official_is_the_release_layout() -> None:
    assert {"official", "tiny"} <= set(PRESETS)
    official = ModelConfig.from_name("official")
    assert (official.embed_dim, official.depth, official.img_size) == (1024, 24, 518)
    assert official.mask_after_layer == 9 and official.masked_layers == tuple(range(10, 20))
    assert official.dpt_layers == (4, 11, 17, 23) and official.has_mask_head
    assert official.shared_layers == 10 and official.kept_layers == (4, 11, 17, 23)
    assert official.token_dim == 2048 and official.patch_start_idx == 5


def test_overrides_and_json_round_trip() -> None:
    config = ModelConfig.from_name("tiny", depth=12, dpt_layers=[2, 5, 8, 11], masked_layers=[10])
    assert config.name == "tiny" and config.dpt_layers == (2, 5, 8, 11)
    again = ModelConfig.from_json(config.to_json())
    assert again == config and again.kept_layers == (2, 5, 8, 11)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"embed_dim": 66}, "divisible"),
        ({"num_heads": 32}, "multiple of 4"),
        ({"masked_layers": (5, 10)}, "after mask_after_layer"),
        ({"dpt_layers": (4, 11, 17, 24)}, "dpt_layers"),
        ({"dpt_layers": (4, 11, 17)}, "exactly four"),
        ({"img_size": 500}, "multiple of patch_size"),
        ({"depth": 0}, "positive"),
        ({"layer_scale_init": 0.0}, "layer_scale_init must be positive"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_invalid_configs_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(Page4DError, match=message):
        ModelConfig.from_name("tiny", **overrides)


def test_unknown_preset_and_bad_json_are_refused() -> None:
    with pytest.raises(Page4DError, match="unknown model preset 'huge'.*official"):
        build_model("huge")
    with pytest.raises(Page4DError, match="not valid JSON"):
        ModelConfig.from_json("{oops")
    with pytest.raises(Page4DError, match="must be an object"):
        ModelConfig.from_json("[1, 2]")


def test_layer_scale_init_sets_aggregator_and_camera_trunk_but_not_the_encoder() -> None:
    assert ModelConfig.from_name("official").layer_scale_init == 0.01  # VGGT's value
    model = build_model("tiny", layer_scale_init=0.25)
    gammas = {
        name: parameter
        for name, parameter in model.named_parameters()
        if name.endswith(("ls1.gamma", "ls2.gamma"))
    }
    outside_encoder = [name for name in gammas if not name.startswith("aggregator.patch_embed")]
    assert any(name.startswith("camera_head.trunk") for name in outside_encoder)
    assert any(name.startswith("aggregator.global_blocks") for name in outside_encoder)
    for name, gamma in gammas.items():
        expected = 1.0 if name.startswith("aggregator.patch_embed") else 0.25
        assert torch.all(gamma == expected), name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"track_hidden": 30, "track_heads": 4}, "track_hidden not divisible"),
        ({"track_features": 18}, "multiple of 4"),
        ({"track_stride": 3}, "track_stride must divide"),
        ({"track_corr_radius": 0}, "positive"),
    ],
)
def test_invalid_track_configs_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(Page4DError, match=message):
        ModelConfig.from_name("tiny", **overrides)


def test_json_without_track_fields_takes_the_given_defaults() -> None:
    values = ModelConfig.from_name("tiny").to_dict()
    values.pop("has_track_head")
    text = json.dumps(values)
    assert not ModelConfig.from_json(text, has_track_head=False).has_track_head
    values["has_track_head"] = True
    assert ModelConfig.from_json(json.dumps(values), has_track_head=False).has_track_head


def test_presets_have_a_track_head() -> None:
    for name in PRESETS:
        assert ModelConfig.from_name(name).has_track_head, name
    small = ModelConfig.from_name("small")
    assert (small.track_features, small.track_hidden) == (32, 64)


def test_config_without_mask_head_shares_nothing() -> None:
    config = ModelConfig.from_name("tiny", has_mask_head=False)
    assert config.shared_layers == config.depth


# ----------------------------------------------------------------------------- forward


def test_output_shapes_and_ranges_for_unbatched_input(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    with torch.no_grad():
        out = model(clip_images(frames=3, height=28, width=42), mask_strength=64.0)
    assert out.pose_enc.shape == (1, 3, 9)
    assert len(out.pose_enc_list) == 3 and out.pose_enc_list[-1] is out.pose_enc
    assert out.depth.shape == (1, 3, 28, 42, 1) and out.depth_conf.shape == (1, 3, 28, 42)
    assert out.world_points.shape == (1, 3, 28, 42, 3)
    assert out.world_points_conf.shape == (1, 3, 28, 42)
    assert out.mask_score.shape == (1, 3, 2, 3)
    assert (out.depth > 0).all() and (out.depth_conf >= 1).all()
    assert (out.world_points_conf >= 1).all()
    assert (out.pose_enc[..., 7:] >= 0).all()  # field of view through ReLU
    assert (out.mask_score.abs() < 0.5).all()
    assert out.mask_strength == 64.0


def test_tracks_have_the_documented_shapes_and_ranges(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    with torch.no_grad():
        output = model(clip_images(), mask_strength=64.0, query_points=QUERIES)
    assert output.track.shape == (1, 3, 3, 2)
    assert output.track_vis.shape == output.track_conf.shape == (1, 3, 3)
    assert torch.equal(output.track[0, 0], QUERIES)  # frame 0 is the query itself
    assert bool(((output.track_vis > 0) & (output.track_vis < 1)).all())
    assert bool(((output.track_conf > 0) & (output.track_conf < 1)).all())
    batched = torch.stack((QUERIES, QUERIES + 1.0))
    with torch.no_grad():
        pair = model(clip_images()[None].expand(2, -1, -1, -1, -1), query_points=batched)
    assert pair.track.shape == (2, 3, 3, 2)


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (torch.zeros(3), "query_points must be"),
        (torch.zeros(3, 3), "query_points must be"),
        (torch.zeros(0, 2), "N >= 1"),
        (torch.zeros(2, 3, 2), r"\(1, N, 2\)"),
        (torch.zeros(3, 2, dtype=torch.int64), "floating-point"),
    ],
)
def test_bad_query_points_are_refused(
    clip_images, few_layer_model, points: torch.Tensor, message: str
) -> None:
    with pytest.raises(Page4DError, match=message):
        few_layer_model()(clip_images(), query_points=points)


def test_model_without_track_head_refuses_query_points(clip_images, few_layer_model) -> None:
    model = few_layer_model(has_track_head=False)
    assert model.track_head is None and not model.track_available
    with pytest.raises(Page4DError, match="no track head"):
        model(clip_images(), query_points=QUERIES)


def test_forward_pair_with_tracks_equals_two_calls(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    with torch.no_grad():
        masked, unmasked = model.forward_pair(clip_images(), 64.0, query_points=QUERIES)
        assert_outputs_equal(masked, model(clip_images(), 64.0, query_points=QUERIES))
        assert_outputs_equal(unmasked, model(clip_images(), 0.0, query_points=QUERIES))
        _, cameras_only = model.forward_pair(
            clip_images(), 64.0, unmasked_geometry=False, query_points=QUERIES
        )
    assert cameras_only.track is None


def test_track_head_does_not_change_a_seeded_initialisation(few_layer_config) -> None:
    torch.manual_seed(5)
    with_tracker = Page4D(ModelConfig(**few_layer_config))
    torch.manual_seed(5)
    without = Page4D(ModelConfig(**few_layer_config, has_track_head=False))
    tracker_free = {k: v for k, v in with_tracker.state_dict().items() if "track_head" not in k}
    assert tracker_free.keys() == without.state_dict().keys()
    assert all(torch.equal(v, without.state_dict()[k]) for k, v in tracker_free.items())


def test_batch_items_are_independent(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    first, second = clip_images(seed=1), clip_images(seed=2)
    with torch.no_grad():
        both = model(torch.stack((first, second)), mask_strength=64.0)
        alone = model(second, mask_strength=64.0)
    assert both.depth.shape[0] == 2
    torch.testing.assert_close(both.pose_enc[1:], alone.pose_enc, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(both.world_points[1:], alone.world_points, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((3, 3, 30, 42), "multiples of 14"),
        ((3, 4, 28, 42), r"\(S, 3, H, W\)"),
        ((3, 28, 42), r"\(S, 3, H, W\)"),
        ((0, 3, 28, 42), "at least one frame"),
    ],
)
def test_bad_input_shapes_are_refused(
    few_layer_model, shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(Page4DError, match=message):
        few_layer_model()(torch.rand(shape, dtype=torch.float64))


def test_integer_images_are_refused(few_layer_model) -> None:
    with pytest.raises(Page4DError, match="floating-point"):
        few_layer_model()(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))


def test_mask_strength_only_touches_masked_layers(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    clip = clip_images()
    with torch.no_grad():
        off = model(clip, mask_strength=0.0)
        on = model(clip, mask_strength=64.0)
        weak = model(clip, mask_strength=1.0)
    assert torch.equal(off.mask_score, on.mask_score)
    assert not torch.allclose(off.pose_enc, on.pose_enc)
    assert not torch.allclose(weak.pose_enc, on.pose_enc)


def test_alpha_zero_is_exactly_vggt(few_layer_config, clip_images, few_layer_model) -> None:
    """With the mask off, removing the mask head changes nothing."""
    model = few_layer_model()
    vggt = Page4D(ModelConfig(**{**few_layer_config, "has_mask_head": False})).double().eval()
    state = {k: v for k, v in model.state_dict().items() if "spatial_mask_head" not in k}
    vggt.load_state_dict(state, strict=True)
    clip = clip_images()
    with torch.no_grad():
        ours, theirs = model(clip, 0.0), vggt(clip, 0.0)
    assert torch.equal(ours.pose_enc, theirs.pose_enc)
    assert torch.equal(ours.depth, theirs.depth)
    assert theirs.mask_score is None and not vggt.mask_available


def test_no_mask_head_forces_strength_zero(clip_images, few_layer_model) -> None:
    vggt = few_layer_model(has_mask_head=False)
    clip = clip_images()
    with torch.no_grad():
        forced = vggt(clip, mask_strength=64.0)
        plain = vggt(clip, mask_strength=0.0)
        masked, unmasked = vggt.forward_pair(clip, 64.0)
    assert forced.mask_strength == 0.0 and forced.mask_score is None
    assert torch.equal(forced.pose_enc, plain.pose_enc)
    assert masked is unmasked and masked.mask_strength == 0.0


def test_forward_pair_equals_two_separate_calls(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    clip = clip_images(frames=4)
    with torch.no_grad():
        masked, unmasked = model.forward_pair(clip, 64.0)
        assert_outputs_equal(masked, model(clip, 64.0))
        assert_outputs_equal(unmasked, model(clip, 0.0))


def test_dpt_chunking_does_not_change_results(clip_images, few_layer_model) -> None:
    clip = clip_images(frames=5)
    with torch.no_grad():
        whole = few_layer_model(dpt_chunk_frames=8)(clip, 64.0)
        chunked = few_layer_model(dpt_chunk_frames=2)(clip, 64.0)
    # Same arithmetic per frame; only the convolution batching (and so the last bits) differ.
    for name in ("depth", "depth_conf", "world_points", "world_points_conf"):
        torch.testing.assert_close(getattr(chunked, name), getattr(whole, name), rtol=1e-12, atol=0)
    assert torch.equal(whole.pose_enc, chunked.pose_enc)


def test_only_head_inputs_are_kept(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    aggregator = model.aggregator
    with torch.no_grad():
        state = aggregator.start(clip_images()[None])
        aggregator.advance(state, model.config.depth, 64.0)
    assert sorted(state.kept) == [1, 2, 4, 5]
    assert state.kept[5].shape == (1, 3, 5 + 6, 2 * 16)


# ----------------------------------------------------------------------------- progress


def test_progress_reports_every_stage_in_order(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    calls: list[tuple[str, int, int]] = []
    with torch.no_grad():
        model(clip_images(), 64.0, progress=lambda *call: calls.append(call))
    stages = [stage for stage, _, _ in calls]
    assert stages == ["encoding"] * 1 + ["aggregating"] * 6 + ["heads"] * 3
    assert [done for stage, done, _ in calls if stage == "aggregating"] == list(range(1, 7))
    assert all(done <= total for _, done, total in calls)
    assert calls[-1] == ("heads", 3, 3)


def test_pair_progress_counts_shared_layers_once(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    calls: list[tuple[str, int, int]] = []
    with torch.no_grad():
        model.forward_pair(clip_images(), 64.0, progress=lambda *call: calls.append(call))
    aggregating = [(done, total) for stage, done, total in calls if stage == "aggregating"]
    # 2 shared layers, then 4 layers per variant.
    assert aggregating[-1] == (10, 10) and len(aggregating) == 10
    assert calls[-1] == ("heads", 6, 6)


class Cancelled(Exception):
    pass


def test_an_exception_from_progress_cancels_the_run(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    seen: list[int] = []

    def cancel_at_third_layer(stage: str, done: int, total: int) -> None:
        if stage == "aggregating":
            seen.append(done)
            if done == 3:
                raise Cancelled

    with pytest.raises(Cancelled), torch.no_grad():
        model.forward_pair(clip_images(), 64.0, progress=cancel_at_third_layer)
    assert seen == [1, 2, 3]


# ----------------------------------------------------------------------------- device


def test_choose_device_auto_and_cpu() -> None:
    assert choose_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    auto = choose_device(None)
    assert auto == choose_device("auto")
    if expected is not None:
        assert auto.type == expected
    elif not torch.backends.mps.is_available():
        assert auto.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_cuda_is_a_clear_error() -> None:
    with pytest.raises(Page4DError, match="CUDA is not available"):
        choose_device("cuda")


def test_unknown_device_is_a_clear_error() -> None:
    with pytest.raises(Page4DError, match="unknown device 'gpu0'"):
        choose_device("gpu0")


def test_choose_precision() -> None:
    cpu = torch.device("cpu")
    assert choose_precision(cpu) is None and choose_precision(cpu, "auto") is None
    assert choose_precision(cpu, "fp32") is None
    assert choose_precision(cpu, "bf16") is torch.bfloat16
    assert choose_precision(cpu, "fp16") is torch.float16
    with pytest.raises(Page4DError, match="unknown precision 'int8'"):
        choose_precision(cpu, "int8")


def test_autocast_for() -> None:
    cpu = torch.device("cpu")
    layer = torch.nn.Linear(4, 4)
    x = torch.rand(2, 4)
    with autocast_for(cpu, torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
    with autocast_for(cpu, None):
        assert layer(x).dtype == torch.float32


def test_model_runs_under_bf16_autocast_with_float32_heads(clip_images, few_layer_model) -> None:
    model = few_layer_model().float()
    with torch.no_grad(), autocast_for(torch.device("cpu"), torch.bfloat16):
        out = model(clip_images().float(), 64.0)
    assert out.depth.dtype == torch.float32 and out.pose_enc.dtype == torch.float32
    assert torch.isfinite(out.world_points).all()


def test_rank_one_bias_equals_explicit_softmax() -> None:
    """The masked global attention adds exactly r_i * c_j to the logits."""
    generator = torch.Generator().manual_seed(5)
    batch, heads, tokens, width = 2, 3, 11, 8
    q, k, v = (
        torch.randn(batch, heads, tokens, width, generator=generator, dtype=torch.float64)
        for _ in range(3)
    )
    index = torch.tensor([0, 4, 5])
    weight = torch.tensor([[64.0, 64.0, 2.0], [1.0, -3.0, 64.0]], dtype=torch.float64)
    score = torch.rand(batch, tokens, generator=generator, dtype=torch.float64) - 0.5
    row = torch.zeros(batch, tokens, dtype=torch.float64)
    row[:, index] = weight
    logits = q @ k.transpose(-1, -2) / width**0.5 + (row[:, :, None] * score[:, None, :])[:, None]
    expected = logits.softmax(dim=-1) @ v
    actual = attention_with_bias(q, k, v, RankOneBias(index, weight, score))
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)
    plain = attention_with_bias(q, k, v, None)
    unweighted = [i for i in range(tokens) if i not in index.tolist()]
    assert torch.equal(actual[:, :, unweighted], plain[:, :, unweighted])


def test_forward_pair_can_skip_unmasked_geometry(clip_images, few_layer_model) -> None:
    model = few_layer_model()
    clip = clip_images()
    calls: list[tuple[str, int, int]] = []
    with torch.no_grad():
        masked, unmasked = model.forward_pair(
            clip, 64.0, progress=lambda *call: calls.append(call), unmasked_geometry=False
        )
        full_masked, full_unmasked = model.forward_pair(clip, 64.0)
    assert_outputs_equal(masked, full_masked)
    assert torch.equal(unmasked.pose_enc, full_unmasked.pose_enc)
    assert unmasked.depth is None and unmasked.world_points is None
    assert unmasked.depth_conf is None and unmasked.world_points_conf is None
    assert calls[-1] == ("heads", 4, 4)


def test_model_runs_with_bfloat16_weights(clip_images, few_layer_model) -> None:
    """load_checkpoint(dtype=torch.bfloat16) gives such a model: everything stays bf16."""
    model = few_layer_model().to(torch.bfloat16)
    with torch.no_grad():
        masked, unmasked = model.forward_pair(clip_images(), 64.0)
    assert masked.depth.dtype == torch.bfloat16 and masked.mask_score.dtype == torch.bfloat16
    assert torch.isfinite(masked.world_points).all() and torch.isfinite(unmasked.pose_enc).all()
