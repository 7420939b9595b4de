"""The offline image model, decoded: size and format, prompt-driven pictures, reproducibility,
and image-to-image results that come from their input."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat

from providers.images.base import ImageRequest, InputImage
from providers.images.local import render
from providers.images.paint import plan


def make(prompt: str, **options: object) -> bytes:
    fields: dict[str, object] = {"n": 1, "size": "256x256", "output_format": "png", **options}
    request = ImageRequest("local-image-1", "req", prompt, **fields)  # type: ignore[arg-type]
    return render(request)[0].data


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def distance(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (0-255), at a common small size."""
    small = (64, 64)
    diff = ImageChops.difference(a.convert("RGB").resize(small), b.convert("RGB").resize(small))
    return sum(ImageStat.Stat(diff).mean) / 3


@pytest.mark.parametrize(
    ("size", "output_format", "pil_format"),
    [
        ("1024x1024", "png", "PNG"),
        ("1536x1024", "jpeg", "JPEG"),
        ("1024x1536", "webp", "WEBP"),
        ("256x256", "webp", "WEBP"),
        ("512x512", "jpeg", "JPEG"),
    ],
)
def test_outputs_decode_at_the_asked_size_and_format(
    size: str, output_format: str, pil_format: str
) -> None:
    image = decoded(make("a lighthouse on a cliff", size=size, output_format=output_format))
    assert image.format == pil_format
    assert f"{image.width}x{image.height}" == size


def test_the_same_prompt_and_seed_give_identical_bytes_and_another_seed_does_not() -> None:
    first = make("red sun over blue mountains", seed=7)
    assert make("red sun over blue mountains", seed=7) == first
    assert make("red sun over blue mountains", seed=8) != first
    # Formats with lossy encoders are reproducible too.
    assert make("a city at night", output_format="webp", seed=1) == make(
        "a city at night", output_format="webp", seed=1
    )


def test_different_prompts_give_measurably_different_images() -> None:
    ocean = decoded(make("a calm teal ocean with waves", seed=1))
    fire = decoded(make("red fire and orange flames", seed=1))
    assert distance(ocean, fire) > 30
    # The colour words show: the ocean is bluer than it is red, the fire the other way round.
    red, _, blue = ImageStat.Stat(ocean.convert("RGB")).mean
    assert blue > red
    red, _, blue = ImageStat.Stat(fire.convert("RGB")).mean
    assert red > blue


def test_the_prompt_chooses_palette_layout_and_shapes() -> None:
    scene = plan("a pastel grid of flowers and trees", seed=None)
    assert scene.layout == "grid"
    assert scene.shapes == ("flower", "tree")
    assert plan("a lone sun, portrait", seed=None).layout == "portrait"
    assert plan("mountains at sunset", seed=None).layout == "horizon"
    assert plan("red", seed=None).palette[0] == (214, 40, 40)
    dark = plan("dark red", seed=None).palette[0]
    assert sum(dark) < 214 + 40 + 40


def test_a_transparent_background_is_clear_where_nothing_is_drawn() -> None:
    image = decoded(make("a single sun, portrait", background="transparent"))
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert image.getpixel((128, 128))[3] == 255  # type: ignore[index]


def test_n_images_differ_from_each_other() -> None:
    request = ImageRequest("m", "r", "stars over a forest", 3, "256x256", "png", seed=2)
    outputs = [output.data for output in render(request)]
    assert len(set(outputs)) == 3


def structure(a: Image.Image, b: Image.Image) -> float:
    """Mean difference of the two images' edges (grey levels): where shapes are, not colours."""
    small = (64, 64)
    edges_a = a.convert("L").resize(small).filter(ImageFilter.FIND_EDGES)
    edges_b = b.convert("L").resize(small).filter(ImageFilter.FIND_EDGES)
    return float(ImageStat.Stat(ImageChops.difference(edges_a, edges_b)).mean[0])


@pytest.mark.parametrize(
    "unrelated_prompt",
    ["a green forest with trees", "a blue ocean with waves under white stars", "purple space"],
)
def test_an_edit_is_closer_to_its_input_than_to_an_unrelated_image(unrelated_prompt: str) -> None:
    source = make("a grid of red and yellow squares", seed=3)
    original = decoded(source)
    unrelated = decoded(make(unrelated_prompt, seed=9))
    edited = decoded(
        make("teal ocean style", size="auto", images=(InputImage(source, "image/png"),))
    )
    assert edited.size == (256, 256)  # auto: the input's own size
    assert distance(edited, original) < distance(edited, unrelated)
    assert structure(edited, original) < structure(edited, unrelated)
    # Even the picture its own prompt paints is further away in shape than its input.
    assert structure(edited, original) < structure(edited, decoded(make("teal ocean style")))
    assert distance(edited, original) > 5  # ... and it did change: no copy of its input


def test_strength_moves_an_edit_from_its_input_towards_the_prompt() -> None:
    source = make("yellow sunflowers in a field", seed=4)
    original = decoded(source)
    images = (InputImage(source, "image/png"),)
    distances = [
        distance(decoded(make("navy night", images=images, strength=s)), original)
        for s in (0.0, 0.5, 1.0)
    ]
    assert distances[0] < 1  # strength 0 keeps the input
    assert distances[0] < distances[1] < distances[2]


def test_a_mask_keeps_the_opaque_part_of_the_input() -> None:
    source = make("a grid of red squares", seed=5)
    mask = Image.new("RGBA", (256, 256), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 128, 256))  # the left half is to be edited
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    edited = decoded(
        make(
            "navy night",
            images=(InputImage(source, "image/png"),),
            mask=InputImage(buffer.getvalue(), "image/png"),
            strength=1.0,
        )
    )
    original = decoded(source)
    right = (128, 0, 256, 256)
    left = (0, 0, 128, 256)
    assert distance(edited.crop(right), original.crop(right)) < 1
    assert distance(edited.crop(left), original.crop(left)) > 10


def test_other_input_images_lend_their_colours() -> None:
    source = make("a grey stone wall", seed=6)
    green = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 200, 0)).save(green, "PNG")
    alone = decoded(make("plain", images=(InputImage(source, "image/png"),), strength=1.0))
    lent = decoded(
        make(
            "plain",
            images=(InputImage(source, "image/png"), InputImage(green.getvalue(), "image/png")),
            strength=1.0,
        )
    )
    assert (
        ImageStat.Stat(lent.convert("RGB")).mean[1] > ImageStat.Stat(alone.convert("RGB")).mean[1]
    )
