"""The embedded default dataset: procedurally drawn scenes with captions and ratings.

Writes exactly the five-table format of the course data (see DESIGN.md) so that every stage can run
anywhere with no download. Ratings follow how well a caption's content matches an image's content,
plus noise, so models trained on it learn something real.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40),
    "blue": (40, 90, 220),
    "green": (40, 170, 60),
    "yellow": (240, 210, 40),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
}
SCENES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    # scene -> (sky colour, ground colour)
    "grass": ((150, 200, 250), (70, 150, 60)),
    "beach": ((130, 190, 250), (230, 210, 150)),
    "snow": ((200, 210, 225), (250, 250, 252)),
    "street": ((170, 180, 190), (110, 110, 115)),
    "water": ((160, 205, 245), (40, 110, 190)),
}
SCENE_PHRASES = {
    "grass": ["on the grass", "in a field", "in a park"],
    "beach": ["on the beach", "on the sand", "by the sea"],
    "snow": ["in the snow", "on a snowy hill", "in the snow"],
    "street": ["on the street", "on a city road", "on the pavement"],
    "water": ["in the water", "in a lake", "near the water"],
}
# kind -> (singular, plural) nouns; "child" kinds make child-content images.
NOUNS = {
    "dog": ("dog", "dogs"),
    "ball": ("ball", "balls"),
    "car": ("car", "cars"),
    "kite": ("kite", "kites"),
    "house": ("house", "houses"),
    "man": ("man", "men"),
    "woman": ("woman", "women"),
    "child": ("child", "children"),
}
CHILD_NOUNS = [("little girl", "little girls"), ("boy", "boys"), ("kid", "kids"), ("toddler", "toddlers")]
ADULT_NOUNS = {"man": [("man", "men"), ("person", "people")], "woman": [("woman", "women"), ("lady", "ladies")]}
VERBS = {
    "dog": ["runs", "plays", "jumps"],
    "man": ["stands", "walks", "waves"],
    "woman": ["stands", "walks", "smiles"],
    "child": ["plays", "runs", "laughs"],
}
COUNT_WORDS = {1: "A", 2: "Two", 3: "Three"}
SIDES = ("left", "right")
BALLOON = (250, 110, 190)  # pink: no other thing in the sample has this colour
# A child's height as a share of the drawing size (40-60 px); an adult's is 1.4. At 0.7 a child is some 35 px tall
# in a 256 x 192 image (0.55 drew about 27 px); with children in half the scenes the detector learns from about
# a hundred of them (README, "Sample ground truth").
CHILD_SCALE = 0.7


@dataclass(frozen=True)
class Thing:
    kind: str
    colour: str
    count: int
    side: str


@dataclass
class Scene:
    image: str
    scene: str
    things: list[Thing]
    captions: list[str] = field(default_factory=list)

    @property
    def shows_child(self) -> bool:
        return any(t.kind == "child" for t in self.things)


def _random_scene(rng: random.Random, image: str, child_rate: float) -> Scene:
    scene = rng.choice(list(SCENES))
    kinds = [k for k in NOUNS if k != "child"]
    n_things = rng.choice([1, 2, 2, 3])
    chosen = rng.sample(kinds, n_things)
    if rng.random() < child_rate:
        chosen[rng.randrange(len(chosen))] = "child"
    things = []
    for kind in chosen:
        count = 1 if kind == "house" else rng.choice([1, 1, 2, 3])
        things.append(Thing(kind, rng.choice(list(COLOURS)), count, rng.choice(SIDES)))
    return Scene(image, scene, things)


def _noun(rng: random.Random, thing: Thing) -> str:
    if thing.kind == "child":
        singular, plural = rng.choice(CHILD_NOUNS)
    elif thing.kind in ADULT_NOUNS:
        singular, plural = rng.choice(ADULT_NOUNS[thing.kind])
    else:
        singular, plural = NOUNS[thing.kind]
    return singular if thing.count == 1 else plural


def _phrase(rng: random.Random, thing: Thing, with_colour: bool, article_lower: bool) -> str:
    count = COUNT_WORDS[thing.count]
    if article_lower:
        count = count.lower()
    noun = _noun(rng, thing)
    if thing.kind in ("man", "woman", "child"):
        colour = f"in {thing.colour}" if with_colour else ""
        return " ".join(p for p in (count, noun, colour) if p)
    colour = thing.colour if with_colour else ""
    if thing.count == 1 and count.lower() == "a" and colour[:1] in "aeiou" and colour:
        count = "An" if not article_lower else "an"
    return " ".join(p for p in (count, colour, noun) if p)


def _captions(rng: random.Random, scene: Scene, n: int) -> list[str]:
    captions = []
    where = SCENE_PHRASES[scene.scene]
    for i in range(n):
        things = scene.things[:]
        rng.shuffle(things)
        keep = things[: rng.randint(1, len(things))]
        with_colour = i % 3 != 2
        first, rest = keep[0], keep[1:]
        text = _phrase(rng, first, with_colour, article_lower=False)
        if first.kind in VERBS and rng.random() < 0.6:
            verb = rng.choice(VERBS[first.kind])
            if first.count > 1:
                verb = verb[:-1]  # every verb here takes a plain -s in the singular
            text += f" {verb}"
        for other in rest:
            text += f" and {_phrase(rng, other, with_colour, article_lower=True)}"
        if rng.random() < 0.4:
            text += f" on the {first.side}"
        text += f" {rng.choice(where)} ."
        captions.append(text)
    return captions


def _draw_person(
    draw: ImageDraw.ImageDraw, x: int, ground: int, height: int, colour: tuple, child: bool = False
) -> None:
    # A child is short, its head is a large share of its height (a quarter; an adult's is an eighth), and it
    # holds a pink balloon: with about a hundred child images to learn from, the detector needs a cue that
    # linear features of a small drawing carry. Real photos are harder (README, "Child safety").
    head = max(3, height // 4) if child else max(3, height // 8)
    top = ground - height
    draw.ellipse([x - head, top, x + head, top + 2 * head], fill=(235, 190, 150))
    body_top, body_bottom = top + 2 * head, ground - height // 3
    draw.rectangle([x - head, body_top, x + head, body_bottom], fill=colour)
    draw.line([x - head // 2, body_bottom, x - head, ground], fill=(40, 40, 40), width=max(2, head // 2))
    draw.line([x + head // 2, body_bottom, x + head, ground], fill=(40, 40, 40), width=max(2, head // 2))
    draw.line([x - head, body_top + 2, x - 2 * head, body_top + height // 4], fill=colour, width=max(2, head // 2))
    draw.line([x + head, body_top + 2, x + 2 * head, body_top + height // 4], fill=colour, width=max(2, head // 2))
    if child:
        hand, radius = (x + 2 * head, body_top + height // 4), max(8, 2 * head)
        centre = (hand[0] + radius // 2, top - radius)
        draw.line([hand, centre], fill=(60, 60, 60), width=1)
        draw.ellipse([centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius], fill=BALLOON)


def _draw_thing(draw: ImageDraw.ImageDraw, rng: random.Random, thing: Thing, x: int, ground: int, size: int) -> None:
    colour = COLOURS[thing.colour]
    if thing.kind == "ball":
        r = size // 4
        draw.ellipse([x - r, ground - 2 * r, x + r, ground], fill=colour, outline=(0, 0, 0))
    elif thing.kind == "car":
        w, h = size, size // 3
        draw.rectangle([x - w // 2, ground - h - 6, x + w // 2, ground - 6], fill=colour)
        draw.rectangle([x - w // 4, ground - h - 6 - h // 2, x + w // 4, ground - h - 6], fill=colour)
        for wx in (x - w // 3, x + w // 3):
            draw.ellipse([wx - 6, ground - 12, wx + 6, ground], fill=(20, 20, 20))
    elif thing.kind == "kite":
        cy = ground - size - rng.randint(20, 40)
        r = size // 3
        draw.polygon([(x, cy - r), (x + r, cy), (x, cy + r), (x - r, cy)], fill=colour)
        draw.line([x, cy + r, x + 10, ground - 5], fill=(60, 60, 60), width=1)
    elif thing.kind == "house":
        w = size
        draw.rectangle([x - w // 2, ground - w, x + w // 2, ground], fill=colour, outline=(0, 0, 0))
        draw.polygon(
            [(x - w // 2 - 6, ground - w), (x + w // 2 + 6, ground - w), (x, ground - w - w // 2)], fill=(120, 50, 40)
        )
        draw.rectangle([x - 6, ground - 18, x + 6, ground], fill=(80, 50, 30))
    elif thing.kind == "dog":
        w, h = size // 2, size // 5
        draw.ellipse([x - w // 2, ground - h - 10, x + w // 2, ground - 10], fill=colour, outline=(0, 0, 0))
        draw.ellipse([x + w // 2 - 4, ground - h - 18, x + w // 2 + 10, ground - h - 4], fill=colour, outline=(0, 0, 0))
        for lx in (x - w // 3, x + w // 3):
            draw.line([lx, ground - 10, lx, ground], fill=colour, width=3)
    elif thing.kind in ("man", "woman"):
        _draw_person(draw, x, ground, int(size * 1.4), colour)
    elif thing.kind == "child":
        _draw_person(draw, x, ground, int(size * CHILD_SCALE), colour, child=True)


def render(scene: Scene, rng: random.Random, width: int = 256, height: int = 192) -> Image.Image:
    sky, ground_colour = SCENES[scene.scene]
    img = Image.new("RGB", (width, height), sky)
    draw = ImageDraw.Draw(img)
    horizon = int(height * rng.uniform(0.45, 0.6))
    draw.rectangle([0, horizon, width, height], fill=ground_colour)
    for _ in range(40):  # texture, so no two backgrounds are identical
        x, y = rng.randrange(width), rng.randrange(horizon, height)
        shade = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in ground_colour)
        draw.point((x, y), fill=shade)
    # Children are drawn last, on top: an image that "shows a child" must show it, not hide it behind a house.
    for thing in sorted(scene.things, key=lambda t: t.kind == "child"):
        lo, hi = (0.1, 0.45) if thing.side == "left" else (0.55, 0.9)
        for k in range(thing.count):
            x = int(width * rng.uniform(lo, hi))
            ground = int(rng.uniform(horizon + 15, height - 5))
            _draw_thing(draw, rng, thing, x, ground, size=rng.randint(40, 60) - 5 * k)
    return img


def relevance(image_scene: Scene, caption_scene: Scene) -> float:
    """How well a caption written for `caption_scene` fits `image_scene`, in [0, 1]."""
    if image_scene.image == caption_scene.image:
        return 1.0
    mine = {(t.kind, t.colour) for t in image_scene.things}
    theirs = {(t.kind, t.colour) for t in caption_scene.things}
    my_kinds = {t.kind for t in image_scene.things}
    their_kinds = {t.kind for t in caption_scene.things}
    kind_overlap = len(my_kinds & their_kinds) / len(their_kinds)
    exact_overlap = len(mine & theirs) / len(theirs)
    same_scene = 1.0 if image_scene.scene == caption_scene.scene else 0.0
    return min(1.0, 0.45 * kind_overlap + 0.35 * exact_overlap + 0.2 * same_scene)


@dataclass(frozen=True)
class SampleSummary:
    out_dir: Path
    train_images: int
    test_images: int
    train_pairs: int
    crowd_rows: int
    expert_rows: int
    test_queries: int
    # Ground truth the pipeline never reads: images drawn with a child, and those among them that no known
    # caption (train pairs, test queries) mentions the child of, so only pixels or ratings can give them away.
    child_images: tuple[str, ...] = ()
    unmentioned_child_images: tuple[str, ...] = ()


def generate_sample(  # noqa: PLR0912, PLR0915 -- one linear recipe; the safety work splits it
    out_dir: Path,
    seed: int = 0,
    n_train: int = 200,
    n_test: int = 50,
    child_rate: float = 0.5,
    captions_per_image: int = 4,
    pairs_per_image: int = 5,
    crowd_extra_per_image: int = 6,
    unknown_crowd_queries: int = 5,
) -> SampleSummary:
    """Write a deterministic sample dataset in the five-table format into `out_dir`."""
    if n_train < 10 or n_test < 2:
        raise ValueError(f"need at least 10 train and 2 test images, got n_train={n_train}, n_test={n_test}")
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    (out_dir / "train_images").mkdir(parents=True, exist_ok=True)
    (out_dir / "test_images").mkdir(parents=True, exist_ok=True)

    def name(i: int) -> str:
        return f"{rng.randrange(10**9, 10**10)}_{rng.getrandbits(40):010x}.jpg"

    train = [_random_scene(rng, name(i), child_rate) for i in range(n_train)]
    test = [_random_scene(rng, name(i), child_rate) for i in range(n_test)]
    for split, scenes in (("train_images", train), ("test_images", test)):
        for scene in scenes:
            scene.captions = _captions(rng, scene, captions_per_image)
            render(scene, rng).save(out_dir / split / scene.image, format="JPEG", quality=88)

    # Queries are captions of train images; like the course data, pairs mostly join an image with
    # another image's caption, and the crowd also rated the image's own caption.
    all_queries = [(f"{s.image}#{n}", text, s) for s in train for n, text in enumerate(s.captions)]
    pairs: list[tuple[Scene, str, str, Scene]] = []
    seen: set[tuple[str, str]] = set()
    for scene in train:
        candidates = rng.sample(all_queries, min(len(all_queries), pairs_per_image * 6))
        # Half the candidates ranked by relevance, so the targets cover the whole [0, 1] range.
        candidates.sort(key=lambda q: -relevance(scene, q[2]))
        picked = candidates[: pairs_per_image // 2] + rng.sample(
            candidates[pairs_per_image:], pairs_per_image - pairs_per_image // 2
        )
        if rng.random() < 0.5:  # sometimes the image's own caption, rated as a clear match
            n = rng.randrange(captions_per_image)
            picked[-1] = (f"{scene.image}#{n}", scene.captions[n], scene)
        for qid, text, qscene in picked:
            if (scene.image, qid) not in seen:
                seen.add((scene.image, qid))
                pairs.append((scene, qid, text, qscene))

    with open(out_dir / "train_dataset.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "query_id", "query_text"])
        for scene, qid, text, _ in pairs:
            writer.writerow([scene.image, qid, text])

    expert_rows = 0
    with open(out_dir / "ExpertAnnotations.tsv", "w", newline="", encoding="utf-8") as fh:
        for scene, qid, _, qscene in pairs:
            rel = relevance(scene, qscene)
            votes = [min(4, max(1, round(1 + 3 * rel + rng.gauss(0, 0.45)))) for _ in range(3)]
            fh.write("\t".join([scene.image, qid, *map(str, votes)]) + "\n")
            expert_rows += 1

    crowd: list[tuple[str, str, int, int]] = []
    crowd_seen: set[tuple[str, str]] = set()

    def add_crowd(scene: Scene, qid: str, rel: float) -> None:
        if (scene.image, qid) in crowd_seen:
            return
        crowd_seen.add((scene.image, qid))
        raters = rng.choice([3, 3, 3, 4, 5])
        p = min(1.0, max(0.0, rel**2 + rng.gauss(0, 0.05)))
        yes = sum(rng.random() < p for _ in range(raters))
        crowd.append((scene.image, qid, yes, raters - yes))

    # Extra crowd pairs use captions that the train table names, so their texts are known.
    known_queries = list({qid: (qid, qscene) for _, qid, _, qscene in pairs}.values())
    for scene in train:
        for qid, qscene in rng.sample(known_queries, crowd_extra_per_image):
            add_crowd(scene, qid, relevance(scene, qscene))
    for scene, qid, _, qscene in pairs[: len(pairs) // 2]:
        add_crowd(scene, qid, relevance(scene, qscene))
    # Crowd rows whose caption text is in no table: the real data has them, the pipeline must drop them.
    for k in range(unknown_crowd_queries):
        scene = train[k % len(train)]
        crowd.append((scene.image, f"{scene.image}#{captions_per_image + 2}", 0, 3))
    with open(out_dir / "CrowdAnnotations.tsv", "w", newline="", encoding="utf-8") as fh:
        for image, qid, yes, no in crowd:
            share = yes / (yes + no)
            fh.write(f"{image}\t{qid}\t{share:.6g}\t{yes}\t{no}\n")

    test_texts: list[tuple[Scene, str]] = []
    with open(out_dir / "test_queries.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="|")
        writer.writerow(["", "query_id", "query_text", "image"])
        for i, scene in enumerate(test):
            n = rng.randrange(captions_per_image)
            text = scene.captions[n]
            test_texts.append((scene, text))
            if i == 0:  # the real file has quoted texts with doubled quotes; so does ours
                text = f'{text[:-2]} , "smiling" .'
            writer.writerow([i, f"{scene.image}#{n}", text, scene.image])

    with open(out_dir / "test_images.csv", "w", newline="", encoding="utf-8") as fh:
        fh.write("image\n")
        for scene in test:
            fh.write(f"{scene.image}\n")

    children = [scene for scene in train + test if scene.shows_child]
    mentioned = {qscene.image for _, _, text, qscene in pairs if _mentions_child(text)}
    mentioned |= {scene.image for scene, text in test_texts if _mentions_child(text)}
    return SampleSummary(
        out_dir,
        len(train),
        len(test),
        len(pairs),
        len(crowd),
        expert_rows,
        len(test),
        child_images=tuple(sorted(s.image for s in children)),
        unmentioned_child_images=tuple(sorted(s.image for s in children if s.image not in mentioned)),
    )


def _mentions_child(caption: str) -> bool:
    nouns = {w for pair in CHILD_NOUNS for noun in pair for w in noun.split()} - {"little"}
    return any(word in nouns for word in caption.lower().split())
