import pytest
import torch

from neofield.sampling import KEEP, ErrorMap


def test_a_fresh_map_draws_uniformly_over_pixels_with_unit_weights():
    errors = ErrorMap(3, 10, 13)  # tiles cut short at the bottom and the right
    frame, row, col, tile, weight = errors.draw(60_000, torch.Generator().manual_seed(0))
    assert torch.allclose(weight, torch.ones_like(weight))
    counts = torch.bincount((frame * 10 + row) * 13 + col, minlength=3 * 10 * 13).float()
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()


def test_drawn_pixels_lie_inside_their_tile_and_the_frame():
    errors = ErrorMap(5, 10, 13, tile=4, max_tiles=36)  # tiles of 2 frames, the last of one
    assert errors.span == 2 and errors.grid == (3, 3, 4)
    errors.error = torch.rand(len(errors))
    frame, row, col, tile, _ = errors.draw(20_000, torch.Generator().manual_seed(1))
    assert frame.max() == 4 and row.max() == 9 and col.max() == 12 and min(frame.min(), row.min(), col.min()) == 0
    tf, ty, tx = tile // 12, tile % 12 // 4, tile % 4
    assert torch.equal(frame // 2, tf) and torch.equal(row // 4, ty) and torch.equal(col // 4, tx)


def test_draws_go_where_the_error_is():
    errors = ErrorMap(1, 16, 16)  # four tiles
    errors.error = torch.tensor([100.0, 1.0, 1.0, 1.0])  # sqrt: 10, 1, 1, 1
    _, _, _, tile, weight = errors.draw(40_000, torch.Generator().manual_seed(2))
    share = (tile == 0).float().mean().item()
    assert share == pytest.approx(0.2 * 0.25 + 0.8 * 10 / 13, abs=0.01)
    assert weight[tile == 0].max() < 1 < weight[tile == 1].min()  # the tile drawn more often counts less


def test_the_weighted_mean_of_a_draw_is_the_mean_over_every_pixel():
    torch.manual_seed(3)
    values = torch.rand(4, 20, 27)  # a picture with a bright corner, its tiles cut short at the edges
    values[:, 16:, 24:] += 4
    errors = ErrorMap(4, 20, 27)
    f, r, c = torch.meshgrid(torch.arange(4), torch.arange(20), torch.arange(27), indexing="ij")
    for _ in range(10):  # the bright tiles' errors high: drawn more often, they must count less
        errors.update(((f * 3 + r // 8) * 4 + c // 8).reshape(-1), values.reshape(-1) ** 2)
    estimates = []
    for seed in range(20):
        frame, row, col, _, weight = errors.draw(20_000, torch.Generator().manual_seed(seed))
        estimates.append((weight * values[frame, row, col]).mean())
    assert torch.stack(estimates).mean().item() == pytest.approx(values.mean().item(), rel=0.01)


def test_an_update_moves_the_tiles_seen_toward_their_error_and_leaves_the_others():
    errors = ErrorMap(1, 8, 24)  # three tiles
    errors.update(torch.tensor([0, 0, 2]), torch.tensor([0.2, 0.4, 5.0]))
    expected = torch.tensor([KEEP + (1 - KEEP) * 0.3, 1.0, KEEP + (1 - KEEP) * 5.0])
    assert torch.allclose(errors.error, expected)


def test_a_long_clip_has_tiles_of_several_frames_and_no_more_than_it_may():
    errors = ErrorMap(300, 720, 1280, max_tiles=1 << 18)
    assert len(errors) <= 1 << 18 and errors.span == 17
    assert errors.size.sum().item() == 300 * 720 * 1280


def test_loading_a_map_of_another_shape_is_refused():
    errors = ErrorMap(2, 8, 8)
    errors.load(torch.full((2,), 0.5))
    assert torch.equal(errors.error, torch.full((2,), 0.5))
    with pytest.raises(ValueError, match="not"):
        errors.load(torch.ones(3))


def test_a_map_of_nothing_is_refused():
    with pytest.raises(ValueError):
        ErrorMap(0, 8, 8)
