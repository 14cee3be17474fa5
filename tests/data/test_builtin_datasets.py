"""The built-in datasets: sizes, labels, determinism, and shapes as a continuous function."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from polyinr.data.builtin import BUILTINS, SHAPE_CLASSES, TEXTURE_SOURCES, Faces, Photos, render_shape
from polyinr.data.datasets import open_dataset
from polyinr.errors import PolyinrError
from polyinr.grid import Grid


@pytest.fixture(scope="module")
def digits():
    return open_dataset("builtin:digits", cond=True)


@pytest.fixture(scope="module")
def shapes():
    return open_dataset("builtin:shapes", resolution=16, cond=True)


def test_digits(digits):
    assert (digits.name, len(digits), digits.num_classes, digits.resolution) == ("digits", 1797, 10, 32)
    target = load_digits().target
    assert np.array_equal(digits.labels, target)
    assert np.allclose(digits.label_distribution(), np.bincount(target) / 1797)
    assert digits.label_distribution().sum() == pytest.approx(1.0)
    image, label = digits[0]
    assert label == 0 and image.shape == (3, 32, 32)
    assert np.array_equal(image[0], image[1]) and np.array_equal(image[0], image[2])  # grey as RGB
    assert image[:, 0, 0].tolist() == [0, 0, 0] and image.max() > 200  # white strokes on black


def test_digits_upscale_is_smooth(digits):
    image = digits[5][0][0].numpy().astype(float)  # [32, 32]
    small = load_digits().images[5] / 16 * 255  # [8, 8]
    assert np.allclose(image.reshape(8, 4, 8, 4).mean(axis=(1, 3)), small, atol=40)
    assert len(np.unique(image)) > 40  # not 16 blocky grey levels: interpolated


def test_digits_unconditional_and_other_resolution():
    ds = open_dataset("builtin:digits", resolution=8, mirror=True)
    assert ds.num_classes == 0 and ds.labels is None and len(ds) == 2 * 1797
    assert np.array_equal(ds[1797][0].numpy(), ds[0][0].numpy()[:, :, ::-1])


def test_shapes(shapes):
    assert (shapes.name, len(shapes), shapes.num_classes) == ("shapes", 2000, len(SHAPE_CLASSES))
    assert set(np.unique(shapes.labels)) == set(range(len(SHAPE_CLASSES)))
    assert np.all(shapes.label_distribution() > 0.15)
    assert open_dataset("builtin:shapes").resolution == 32
    again = open_dataset("builtin:shapes", resolution=16, cond=True, max_images=50)
    for k in range(5):  # deterministic: the same items on every open
        i = int(again._keys[k])
        assert np.array_equal(again[k][0], shapes[i][0]) and again[k][1] == shapes[i][1]


def test_shapes_item_is_render_shape_on_the_frame_grid(shapes):
    for i in [0, 7, 1999]:
        assert np.array_equal(shapes[i][0].permute(1, 2, 0).numpy(), render_shape(i, Grid.frame(16)))


def test_shapes_denser_grid_matches_the_dataset_at_that_resolution():
    small = open_dataset("builtin:shapes", resolution=16, max_images=4)
    big = small.with_resolution(64)  # 4×
    for k, i in enumerate(small._keys):
        assert np.array_equal(big[k][0].permute(1, 2, 0).numpy(), render_shape(i, Grid.frame(64)))
        # corner-aligned grids: every 4th pixel of the (16−1)·4+1 grid is a pixel of the 16² grid
        nested = render_shape(i, Grid.frame(61))[::4, ::4]
        assert np.array_equal(nested, small[k][0].permute(1, 2, 0).numpy())


def test_shapes_are_continuous_and_anti_aliased():
    fine = render_shape(11, Grid.frame(512)).astype(int)
    assert np.abs(np.diff(fine, axis=0)).max() <= 12  # a continuous function: small steps at high density
    assert np.abs(np.diff(fine, axis=1)).max() <= 12
    coarse = render_shape(11, Grid.frame(32)).reshape(-1, 3)
    assert len(np.unique(coarse, axis=0)) > 50  # smooth edges and gradient, not two flat colours


def test_render_shape_on_any_window():
    window = Grid.window(-0.5, -0.5, 1.5, 1.5, 9, 9)  # extrapolation beyond the frame
    inner = render_shape(3, Grid.window(0, 0, 1, 1, 5, 5))
    assert np.array_equal(render_shape(3, window)[2:7, 2:7], inner)


def test_photos_are_real_photographs_at_any_resolution():
    ds = open_dataset("builtin:photos", resolution=24)
    assert len(ds) == 156 and ds.resolution == 24
    photos = Photos()
    a, b = photos.render(0, 24), photos.render(0, 24)
    assert a.shape == (24, 24, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert a.std() > 10  # a photograph, not a flat colour
    assert set(photos.labels.tolist()) == {0, 1}


@pytest.mark.parametrize(("name", "size", "num_classes"), [("faces", 100, 0), ("textures", 900, len(TEXTURE_SOURCES))])
def test_scikit_image_sets_load_and_render_at_any_resolution_deterministically(name, size, num_classes):
    ds = open_dataset(f"builtin:{name}", resolution=16, cond=num_classes > 0)
    assert (len(ds), ds.num_classes) == (size, num_classes)
    if num_classes:
        assert np.bincount(ds.labels).tolist() == [size // num_classes] * num_classes
    builtin = BUILTINS[name]()
    for resolution in (16, 48):
        image = builtin.render(size - 1, resolution)
        assert image.shape == (resolution, resolution, 3) and image.dtype == np.uint8
        assert np.array_equal(image, BUILTINS[name]().render(size - 1, resolution))  # the same on every open
        assert image.std() > 10  # a real picture, not a flat colour
    assert np.array_equal(ds[size - 1][0].permute(1, 2, 0).numpy(), builtin.render(size - 1, 16))


def test_faces_are_grey_as_rgb_and_smoothly_resized():
    faces = Faces()
    big = faces.render(0, 100).astype(float)  # 4× the 25² scan
    assert np.array_equal(big[..., 0], big[..., 1]) and np.array_equal(big[..., 0], big[..., 2])
    assert len(np.unique(big[..., 0])) > 100  # interpolated, not 25² blocks
    scan = faces._images[0] * 255
    assert np.abs(big[..., 0].reshape(25, 4, 25, 4).mean(axis=(1, 3)) - scan).mean() < 8


def test_faces_refuse_labels_with_one_line():
    with pytest.raises(PolyinrError, match="builtin:faces has no labels") as err:
        open_dataset("builtin:faces", cond=True)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["faces", "textures"])
def test_a_missing_scikit_image_file_gives_one_line(name, monkeypatch, tmp_path):
    import skimage

    monkeypatch.setattr(skimage, "__file__", str(tmp_path / "skimage" / "__init__.py"))
    with pytest.raises(PolyinrError, match=f"builtin:{name} needs .*reinstall scikit-image") as e:
        open_dataset(f"builtin:{name}")
    assert "\n" not in str(e.value)
