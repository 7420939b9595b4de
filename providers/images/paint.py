"""The offline painter: a deterministic picture chosen from a prompt's words, drawn with Pillow.

``plan`` reads the prompt into a ``Scene``: the palette (colour words such as "red" or "teal",
theme words such as "sunset", "ocean" or "forest", then colours hashed from the other words), a
mood ("night" darkens, "pastel" lightens), a layout ("grid", "portrait", a horizon when the prompt
names a landscape, else a hashed one) and shapes ("sun" is a disc, "mountain" a triangle, "city"
blocks, "sea" waves, "star", "tree", "flower"). Every random choice after that comes from one
generator seeded by the normalised prompt and the seed, so the same request gives the same pixels.

``paint`` draws a scene at a size; ``stylise`` makes an image-to-image result: the input's
luminance mapped onto the prompt's palette (a gradient map), blended with the input by
``strength`` and the prompt's shapes laid over it faintly, so the result keeps the input's
composition and takes the prompt's colours. Encoding is Pillow's (PNG, JPEG, WebP).
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

RGB = tuple[int, int, int]
_WORD = re.compile(r"[a-z]+")

COLORS: dict[str, RGB] = {
    "red": (214, 40, 40), "crimson": (170, 20, 50), "orange": (247, 127, 0),
    "yellow": (252, 211, 40), "gold": (212, 175, 55), "green": (56, 158, 72),
    "lime": (160, 220, 60), "teal": (0, 128, 128), "cyan": (40, 200, 220),
    "blue": (40, 90, 210), "navy": (20, 30, 90), "purple": (120, 50, 160),
    "violet": (150, 90, 210), "magenta": (210, 40, 160), "pink": (245, 150, 180),
    "brown": (120, 75, 40), "white": (245, 245, 240), "black": (15, 15, 20),
    "gray": (128, 128, 128), "grey": (128, 128, 128), "silver": (192, 192, 200),
}  # fmt: skip
THEMES: dict[str, tuple[RGB, ...]] = {
    "sunset": ((250, 120, 50), (240, 80, 120), (90, 40, 120)),
    "sunrise": ((255, 180, 90), (250, 130, 110), (120, 160, 220)),
    "ocean": ((10, 60, 120), (20, 140, 170), (150, 220, 230)),
    "sea": ((10, 60, 120), (20, 140, 170), (150, 220, 230)),
    "forest": ((20, 70, 30), (60, 130, 60), (110, 80, 45)),
    "desert": ((235, 200, 140), (210, 140, 70), (150, 90, 50)),
    "night": ((10, 15, 45), (40, 40, 90), (200, 200, 220)),
    "space": ((5, 5, 20), (70, 30, 110), (230, 230, 255)),
    "fire": ((200, 30, 10), (250, 120, 0), (255, 220, 60)),
    "snow": ((235, 240, 250), (170, 200, 230), (110, 120, 140)),
    "winter": ((235, 240, 250), (170, 200, 230), (110, 120, 140)),
    "autumn": ((170, 70, 20), (220, 140, 40), (110, 60, 30)),
    "spring": ((170, 220, 120), (250, 190, 210), (120, 190, 230)),
}
DARK_WORDS = frozenset({"dark", "night", "gloomy", "shadow", "moody", "midnight", "noir"})
LIGHT_WORDS = frozenset({"bright", "pastel", "light", "soft", "sunny", "airy"})
SHAPES: dict[str, str] = {
    "sun": "disc", "moon": "disc", "planet": "disc", "ball": "disc", "circle": "disc",
    "circles": "disc", "bubble": "disc", "bubbles": "disc", "dot": "disc", "dots": "disc",
    "mountain": "peak", "mountains": "peak", "pyramid": "peak", "triangle": "peak",
    "triangles": "peak", "hill": "peak", "hills": "peak",
    "city": "block", "building": "block", "buildings": "block", "house": "block",
    "tower": "block", "square": "block", "squares": "block", "box": "block", "cube": "block",
    "sea": "wave", "ocean": "wave", "wave": "wave", "waves": "wave", "river": "wave",
    "lake": "wave", "water": "wave",
    "star": "star", "stars": "star", "space": "star", "galaxy": "star",
    "tree": "tree", "trees": "tree", "forest": "tree",
    "flower": "flower", "flowers": "flower", "garden": "flower", "rose": "flower",
}  # fmt: skip
SHAPE_KINDS = ("disc", "peak", "block", "wave", "star", "tree", "flower")
LANDSCAPE = frozenset(
    {"landscape", "horizon", "field", "valley", "beach", "mountain", "mountains", "hills", "sea"}
)
LAYOUTS = ("scatter", "horizon", "grid", "portrait")


@dataclass(frozen=True, slots=True)
class Scene:
    """What the prompt decided, before anything is drawn."""

    palette: tuple[RGB, ...]  # [0], [1]: the background gradient; the rest: the shapes
    layout: str
    shapes: tuple[str, ...]
    seed: bytes

    def describe(self, prompt: str) -> str:
        """The prompt as the painter read it (the answer's ``revised_prompt``)."""
        colors = ", ".join("#{:02x}{:02x}{:02x}".format(*c) for c in self.palette)
        shapes = ", ".join(self.shapes)
        return f"{prompt.strip()} [layout {self.layout}; shapes {shapes}; palette {colors}]"


def _hashed_color(word: str) -> RGB:
    digest = hashlib.sha256(word.encode()).digest()
    r, g, b = colorsys.hsv_to_rgb(digest[0] / 255, 0.45 + digest[1] / 600, 0.55 + digest[2] / 600)
    return round(r * 255), round(g * 255), round(b * 255)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def plan(prompt: str, seed: int | None) -> Scene:
    """The scene a prompt (and seed) paints; a pure function of both."""
    words = _WORD.findall(prompt.lower())
    normal = " ".join(words)
    digest = hashlib.sha256(f"{normal}\x00{seed if seed is not None else ''}".encode()).digest()
    palette: list[RGB] = []
    for word in words:
        for color in THEMES.get(word, ()) + ((COLORS[word],) if word in COLORS else ()):
            if color not in palette:
                palette.append(color)
    for word in words:
        if len(palette) >= 5:
            break
        if word not in COLORS and word not in THEMES and len(word) > 3:
            palette.append(_hashed_color(word))
    while len(palette) < 5:
        palette.append(_hashed_color(f"{normal}#{len(palette)}"))
    if DARK_WORDS.intersection(words):
        palette = [_mix(c, (0, 0, 0), 0.45) for c in palette]
    elif LIGHT_WORDS.intersection(words):
        palette = [_mix(c, (255, 255, 255), 0.4) for c in palette]
    shapes = list(dict.fromkeys(SHAPES[w] for w in words if w in SHAPES))
    if not shapes:
        shapes = [SHAPE_KINDS[digest[1] % len(SHAPE_KINDS)], SHAPE_KINDS[digest[2] % 7]]
        shapes = list(dict.fromkeys(shapes))
    if {"grid", "pattern", "tiles", "mosaic", "tiled"}.intersection(words):
        layout = "grid"
    elif {"portrait", "closeup", "single", "lone", "centered"}.intersection(words):
        layout = "portrait"
    elif LANDSCAPE.intersection(words):
        layout = "horizon"
    else:
        layout = LAYOUTS[digest[0] % 2]  # scatter or horizon
    return Scene(tuple(palette[:6]), layout, tuple(shapes), digest)


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    ramp = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)


def _draw_shape(
    draw: ImageDraw.ImageDraw, kind: str, box: tuple[float, float, float], color: RGB, alpha: int
) -> None:
    x, y, r = box
    fill = (*color, alpha)
    if kind == "disc":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif kind == "peak":
        draw.polygon([(x - r * 1.4, y + r), (x, y - r * 1.2), (x + r * 1.4, y + r)], fill=fill)
    elif kind == "block":
        draw.rectangle((x - r * 0.6, y - r * 1.3, x + r * 0.6, y + r), fill=fill)
    elif kind == "wave":
        points = [(x - r * 2 + i * r / 4, y + r * 0.3 * (1 if i % 2 else -1)) for i in range(17)]
        draw.line(points, fill=fill, width=max(2, int(r / 5)), joint="curve")
    elif kind == "star":
        spikes = []
        for i in range(10):
            reach = r if i % 2 == 0 else r * 0.4
            angle = i * math.pi / 5
            spikes.append((x + reach * math.sin(angle), y - reach * math.cos(angle)))
        draw.polygon(spikes, fill=fill)
    elif kind == "tree":
        draw.rectangle((x - r * 0.12, y, x + r * 0.12, y + r), fill=(90, 60, 30, alpha))
        draw.polygon(
            [(x - r * 0.7, y + r * 0.2), (x, y - r * 1.1), (x + r * 0.7, y + r * 0.2)], fill=fill
        )
    else:  # flower
        for i in range(6):
            angle = i * math.pi / 3
            px, py = x + r * 0.5 * math.cos(angle), y + r * 0.5 * math.sin(angle)
            draw.ellipse((px - r * 0.35, py - r * 0.35, px + r * 0.35, py + r * 0.35), fill=fill)
        draw.ellipse(
            (x - r * 0.25, y - r * 0.25, x + r * 0.25, y + r * 0.25), fill=(250, 220, 60, alpha)
        )


def _placements(
    scene: Scene, size: tuple[int, int], rng: random.Random
) -> list[tuple[str, tuple[float, float, float]]]:
    """Where each shape goes, by the scene's layout."""
    width, height = size
    unit = min(width, height)
    placed: list[tuple[str, tuple[float, float, float]]] = []
    shapes = scene.shapes
    if scene.layout == "portrait":
        placed.append((shapes[0], (width / 2, height / 2, unit * 0.3)))
        for kind in shapes[1:]:
            placed.append((kind, (rng.uniform(0, width), rng.uniform(0, height), unit * 0.08)))
    elif scene.layout == "grid":
        cells = 4
        for row in range(cells):
            for col in range(cells):
                kind = shapes[(row + col) % len(shapes)]
                cx, cy = (col + 0.5) * width / cells, (row + 0.5) * height / cells
                placed.append((kind, (cx, cy, unit / cells * 0.35)))
    elif scene.layout == "horizon":
        ground = height * rng.uniform(0.55, 0.7)
        for index, kind in enumerate(shapes * 3):
            sky = kind in ("disc", "star")
            y = (
                rng.uniform(height * 0.1, ground * 0.7)
                if sky
                else ground + rng.uniform(-unit * 0.05, unit * 0.1)
            )
            placed.append(
                (kind, (rng.uniform(0, width), y, unit * rng.uniform(0.06, 0.16) / (1 + index / 6)))
            )
    else:
        for kind in shapes * 4:
            placed.append(
                (
                    kind,
                    (rng.uniform(0, width), rng.uniform(0, height), unit * rng.uniform(0.04, 0.15)),
                )
            )
    return placed


def _shapes_layer(scene: Scene, size: tuple[int, int], alpha: int) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    rng = random.Random(scene.seed)
    colors = scene.palette[2:] or scene.palette
    if scene.layout == "horizon":  # the ground: the darkest colour, in a band
        ground = min(scene.palette, key=sum)
        draw.rectangle((0, size[1] * 0.72, size[0], size[1]), fill=(*ground, alpha))
    for kind, box in _placements(scene, size, rng):
        _draw_shape(draw, kind, box, rng.choice(colors), alpha)
    return layer


def paint(scene: Scene, size: tuple[int, int], transparent: bool = False) -> Image.Image:
    """The scene drawn at ``size``: RGB, or RGBA on a clear background when ``transparent``."""
    shapes = _shapes_layer(scene, size, 255)
    if transparent:
        return shapes
    background = _gradient(size, scene.palette[0], scene.palette[1]).convert("RGBA")
    return Image.alpha_composite(background, shapes).convert("RGB")


def _gradient_map(image: Image.Image, palette: Sequence[RGB]) -> Image.Image:
    """The image's luminance coloured by ``palette``, darkest colour for black, lightest for
    white: the input's composition in the prompt's colours."""
    ramp = sorted(palette, key=lambda c: 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])
    steps = len(ramp) - 1
    lut: list[list[int]] = [[], [], []]
    for level in range(256):
        position = level / 255 * steps
        low = min(int(position), steps - 1)
        color = _mix(ramp[low], ramp[low + 1], position - low)
        for channel in range(3):
            lut[channel].append(color[channel])
    gray = image.convert("L")
    channels = [gray.point(lut[channel]) for channel in range(3)]
    return Image.merge("RGB", channels)


def dominant(image: Image.Image, count: int = 3) -> list[RGB]:
    """An image's most common colours (after reducing it to ``count``)."""
    small = image.convert("RGB").resize((64, 64))
    reduced = small.quantize(colors=count, method=Image.Quantize.MEDIANCUT)
    flat = reduced.getpalette() or []
    return [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, min(len(flat), count * 3), 3)]


def stylise(
    base: Image.Image,
    scene: Scene,
    strength: float,
    extra_colors: Sequence[RGB] = (),
    mask: Image.Image | None = None,
) -> Image.Image:
    """Image-to-image: ``base`` (already at the output size) re-coloured after the prompt.

    ``strength`` 0 returns the input, 1 the full gradient map with the shapes at a third of
    their opacity. Where ``mask`` is given, its transparent pixels are the ones edited (OpenAI's
    convention) and its opaque pixels keep the input."""
    source = base.convert("RGB")
    palette = [*scene.palette, *extra_colors]
    mapped = _gradient_map(source, palette)
    result = Image.blend(source, mapped, strength).convert("RGBA")
    result = Image.alpha_composite(result, _shapes_layer(scene, source.size, round(60 * strength)))
    edited = result.convert("RGB")
    if mask is None:
        return edited
    keep = mask.getchannel("A") if "A" in mask.getbands() else mask.convert("L")
    return Image.composite(source, edited, keep.resize(source.size))


def encode(image: Image.Image, output_format: str, quality: int) -> bytes:
    """The image's bytes in ``output_format``; the same image always gives the same bytes."""
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, "PNG", compress_level=6)
    elif output_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()
