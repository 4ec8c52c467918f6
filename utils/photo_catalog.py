"""Which files of which Debian packages are real camera photographs, and under which license.

Only photographs: every package below also ships renders, drawings, logos or screenshots, so
photos are named one by one (or, inside GCompris' resource archives, by folder and size; its
README beside each photo gives author and license). `scale` is the integer factor by which a
source is downscaled so that its own noise and compression artifacts vanish: 2 for JPEG or
lossy WebP originals, 1 for lossless or near-lossless ones (PNG, JPEG quality ~99) whose
estimated noise is already well below 1/255, and for photos already downscaled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    package: str
    folder: str  # inside the package
    files: tuple[str, ...]  # under `folder`: files; for kind "edj" containers; for "rcc" archives
    kind: str = "file"  # file, edj (largest embedded JPEG), wallpaper (largest size of a KDE wallpaper), rcc
    license: str = ""  # empty for rcc: each photo's README says
    author: str = ""
    scale: int = 2
    subfolders: tuple[str, ...] = ()  # rcc: only photos in these folders of the archive
    min_side: int = 160  # rcc: smaller images are cut-outs and icons


ENLIGHTENMENT_PHOTOS = [
    "Bamboo",
    "Foggy-Trees",
    "God-Rays",
    "Green-Maple",
    "Lichen-Branches",
    "Mountain",
    "Peaks",
    "Red-Maple",
    "Sea-of-Lanterns",
    "Snow-Trees",
    "Spruce-Needles",
    "Sunset-Clouds",
    "Sunset-Hills",
    "White-Flower",
    "Yellow-Flower",
]  # Dunes, Flat-*, Paper-Flower and Squiggle* are renders
WALLPAPER_PHOTOS = [
    "BytheWater",
    "ColorfulCups",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Honeywave",
    "Kite",
    "OneStandsOut",
    "Path",
    "summer_1am",
    "Volna",
]
# Scratch's drawings, left out: party-room, room1-3, spotlight-stage, woods-and-bench,
# atom-playground, brick-wall1, school2
SCRATCH_PHOTOS = {
    "Nature": "beach-malibu canyon flower-bed forest garden-rock grand-canyon gravel-desert hill lake moon "
    "pathway tree water-and-rocks wave",
    "Outdoors": "all-sports-mural bench-with-view berkeley-mural boardwalk brick-wall-and-stairs brick-wall2 "
    "building-at-mit building-fireproof castle city-with-water city-with-water2 driveway graffiti "
    "hallway_outdoors hay_field houses mansion mural-faro parking-ramp pool route66 silos the-movies "
    "train-tracks1 train-tracks2 village wooden-house",
    "Sports": "baseball-field basketball-court1-a basketball-court1-b football-field playing-field tennis-backboard",
    "Indoors": "chalkboard clothing-store hall kitchen the-movies-inside",
}
KALZIUM_PHOTOS = [
    "abzug",
    "becherglas",
    "brechungsmesser",
    "brenner",
    "destillierbruecke",
    "dsc",
    "erlenmeyerkolben",
    "exikator",
    "halter",
    "heizplatte",
    "hplc",
    "korkring",
    "messzylinder",
    "moerser",
    "phpapier",
    "pileusball",
    "pipette",
    "rg-halter",
    "rg-staender",
    "rg",
    "rotationsverdampfer",
    "rueckflusskuehler",
    "ruehrfisch",
    "rundkolben",
    "scheidetrichter",
    "schutzbrille",
    "spatel",
    "spritzflasche",
    "thermometer",
    "thermometer2",
    "tonschale",
    "trichter",
    "trockenrohr",
    "tropftrichter",
    "uhrglas",
    "verteiler",
    "vollpipette",
    "waage",
    "wasserstrahlpumpe",
]
# stereo pairs and sequences keep one view; renders, charts, text and gray video frames are left out
OPENCV_PHOTOS = [
    "aero1.jpg",
    "aloeL.jpg",
    "apple.jpg",
    "baboon.jpg",
    "building.jpg",
    "butterfly.jpg",
    "ela_original.jpg",
    "fruits.jpg",
    "graf1.png",
    "home.jpg",
    "leuvenA.jpg",
    "messi5.jpg",
    "orange.jpg",
    "squirrel_cls.jpg",
    "stuff.jpg",
]

SOURCES = (
    Source(
        "enlightenment-data",
        "usr/share/enlightenment/data/backgrounds",
        tuple(f"{name}.edj" for name in ENLIGHTENMENT_PHOTOS),
        kind="edj",
        license="BSD-2-clause",
        author="Enlightenment project (see the package's copyright file)",
        scale=1,  # JPEG quality ~99, estimated noise 0.4-0.9/255 at full size
    ),
    Source(
        "gcompris-qt-data",
        "usr/share/gcompris-qt/rcc",
        (
            "erase.rcc",
            "explore_world_animals.rcc",
            "explore_farm_animals.rcc",
            "explore_monuments.rcc",
            "explore_world_music.rcc",
            "clickgame.rcc",
        ),
        kind="rcc",
        min_side=500,  # clickgame's fish are small cut-outs; its sea backgrounds are photos
    ),
    Source(
        "gcompris-qt-data",
        "usr/share/gcompris-qt/rcc",
        ("categorization.rcc",),
        kind="rcc",
        subfolders=("monuments", "tools", "renewable", "others", "fishes"),
    ),
    Source(
        "plasma-workspace-wallpapers",
        "usr/share/wallpapers",
        tuple(WALLPAPER_PHOTOS),
        kind="wallpaper",
        license="GPL-2+",
        author="KDE contributors",
    ),
    Source(
        "lxqt-themes",
        "usr/share/lxqt/wallpapers",
        ("Butterfly-Kenneth-Wimer.jpg", "after-the-rain.jpg", "fog.jpg", "this-is-not-windows.jpg"),
        license="CC-BY-SA-3.0",
        author="LXQt Project Team, stefonarch (see wallpapers/License)",
    ),
    Source(
        "lxqt-themes",
        "usr/share/lxqt/wallpapers",
        ("Valendas.png", "appleflower.png", "beam.png", "butterfly.png", "cloud.png", "drop.png", "flowers.png"),
        license="CC-BY-SA-3.0",
        author="LXQt Project Team, stefonarch (see wallpapers/License)",
        scale=1,  # lossless, estimated noise 0.1-0.5/255 at full size
    ),
    Source(
        "libelementary-data",
        "usr/share/elementary/images",
        tuple(
            f"{name}.jpg"
            for name in [
                "insanely_huge_test_image",
                "mystrale",
                "mystrale_2",
                "panel_01",
                "plant_01",
                "rock_01",
                "rock_02",
                "sky_01",
                "sky_02",
                "sky_03",
                "sky_04",
                "twofish",
                "wood_01",
            ]
        ),
        license="BSD-2-clause",
        author="Enlightenment Foundation Libraries contributors",
    ),
    Source(
        "digikam-data",
        "usr/share/digikam/about/images",
        ("body-background.jpg",),
        license="GPL-2+",
        author="digiKam developers",
    ),
    Source(
        "sddm-theme-maldives",
        "usr/share/sddm/themes/maldives",
        ("background.jpg",),
        license="CC-BY-3.0",
        author="SDDM contributors",
    ),
    Source(
        "scratch",
        "usr/share/scratch/Media/Backgrounds",
        tuple(f"{folder}/{name}.jpg" for folder, names in SCRATCH_PHOTOS.items() for name in names.split()),
        license="CC-BY-SA-3.0",
        author="Scratch team, MIT Media Lab",
    ),
    Source(
        "kalzium-data",
        "usr/share/kalzium/data/toolpics",
        tuple(f"{name}.jpg" for name in KALZIUM_PHOTOS),
        license="GPL-2+",
        author="Kalzium contributors (KDE)",
    ),
    Source(
        "opencv-doc",
        "usr/share/doc/opencv-doc/examples/data",
        tuple(OPENCV_PHOTOS),
        license="Apache-2.0 AND BSD-3-Clause (the package's copyright file, Files: *)",
        author="OpenCV sample data contributors",
    ),
    Source(
        "libjxl-testdata",
        "usr/share/libjxl-testdata",
        (
            "jxl/flower/flower.png",
            "external/wesaturate/500px/cvo9xd_keong_macan_srgb8.png",
            "external/wesaturate/500px/tmshre_riaphotographs_srgb8.png",
            "external/wesaturate/500px/u76c0g_bliznaca_srgb8.png",
        ),
        license="BSD-3-clause",
        author="libjxl authors",
        scale=1,  # lossless
    ),
)
# scikit-image sample photos that are not evaluation images (the gray ones become 3 equal channels)
SKIMAGE_PHOTOS = (
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "coins.png",
    "moon.png",
)
# evaluation photos, never trained on: scikit-image's chelsea, coffee, astronaut; scikit-learn's china, flower
EVALUATION_PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "china.jpg", "flower.jpg")
