"""Pixel -> token geometry shared by the landmark attention loss and the benchmark: the border rule."""
import numpy as np
import torch

from instantrestore.generator.attention import CapturedAttention
from instantrestore.bench.cases import correct_region_mass
from instantrestore.losses import landmark_targets
from instantrestore.generator.token_grid import containing_tokens, inside_image, token_coords

SIZE, GRID = 16, (4, 4)


def test_image_area_is_half_open_in_numpy_and_torch():
    # pixel centres at integers: a 16 px side spans [-0.5, 15.5); 15.5 (continuous 16 == size) is outside
    xs = [-0.5001, -0.5, 0.0, 15.4999, 15.5, np.nan]
    expected = [False, True, True, True, False, False]
    points = np.array([[x, 3.0] for x in xs], np.float32)
    assert inside_image(points, (SIZE, SIZE)).tolist() == expected
    assert inside_image(torch.from_numpy(points), (SIZE, SIZE)).tolist() == expected
    assert inside_image(points[:, ::-1].copy(), (SIZE, SIZE)).tolist() == expected  # same rule for y


def test_containing_token_is_floor_of_the_continuous_coordinate():
    # continuous u = x + 0.5 in [0, 16) -> token floor(u * 4 / 16); the first and last pixel of each token
    points = np.array([[-0.5, -0.5], [3.4999, 0.0], [3.5, 0.0], [15.4999, 15.4999]], np.float32)
    assert containing_tokens(points, (SIZE, SIZE), GRID).tolist() == [0, 0, 1, 15]
    # token centres: pixel 1.5 is the centre of token 0 (pixels -0.5..3.5), pixel 13.5 of token 3
    np.testing.assert_array_equal(token_coords(np.array([[1.5, 13.5]], np.float32), (SIZE, SIZE), GRID), [[0.0, 3.0]])
    torch.testing.assert_close(token_coords(torch.tensor([[1.5, 13.5]]), (SIZE, SIZE), GRID), torch.tensor([[0.0, 3.0]]))


def test_loss_and_benchmark_agree_at_the_far_edge():
    edge, inner = SIZE - 0.5, SIZE - 0.5 - 1e-3
    for x, supervised in ((edge, False), (inner, True)):
        target = torch.tensor([[[x, 8.0]]])
        refs = torch.tensor([[[[8.0, 8.0]]]])
        _, assign = landmark_targets(target, refs, None, (SIZE, SIZE), (SIZE, SIZE), GRID, GRID, sigma=1.0, radius=2.0)
        assert bool((assign >= 0).any()) is supervised
        probs = torch.full((1, 1, 16, 1, 16), 1 / 16)
        mass, _ = correct_region_mass(CapturedAttention(probs, GRID, GRID), target[0].numpy(), refs[0].numpy(), SIZE)
        assert bool(np.isfinite(mass)) is supervised
