"""Fuzzed image folders: empty, one class, classes without images,
unreadable and truncated files, files that are no images, mixed sizes,
grayscale, palette, 16-bit, RGBA and CMYK images in PNG, JPEG, BMP and GIF.

Unusable folders are refused with one line when they are listed (before
TensorFlow loads); every other folder is valid input: its images, whatever
their size and colour mode, come out of the pipeline as RGB batches of the
requested size (docs/fuzzing.md)."""

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from hournas_tf import data
from hournas_tf import fuzzing
from hournas_tf.common.errors import UserError
from hournas_tf.data import image_folder

# Image files are slow to write and large as data; every other health
# check (filter_too_much among them) stays on.
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@settings(max_examples=200, **SETTINGS)
@given(fuzzing.image_folder())
def test_fuzzed_image_folders_are_listed_or_refused(spec):
    fuzzing.check_folder(spec)


@pytest.mark.parametrize('kind', ['random', 'empty', 'text', 'bmp_1bit',
                                  'truncated'])
@pytest.mark.parametrize('ext', sorted(fuzzing.IMAGE_FORMATS))
def test_one_bad_file_among_good_ones_is_named(tmp_path, kind, ext):
    """Regression: truncated files and 1-bit BMPs passed the listing (the
    signature was right) and failed in the middle of training."""
    good = fuzzing.image_bytes(ext, 'RGB', (9, 9))
    bad = {'random': b'\x00\x01junk', 'empty': b'', 'text': b'hello\n',
           'bmp_1bit': fuzzing.image_bytes('bmp', '1', (9, 9)),
           'truncated': good[:len(good) // 2]}[kind]
    for c in ('a', 'b'):
        for i in range(3):
            fuzzing.write(str(tmp_path / c / f'{i}.{ext}'), good)
    fuzzing.write(str(tmp_path / 'b' / f'bad.{ext}'), bad)
    with pytest.raises(UserError) as e:
        image_folder.list_folder(str(tmp_path))
    message = fuzzing.check_user_error(e.value)
    assert '1 unreadable image file(s)' in message
    assert f'b/bad.{ext}' in message


# Valid odd folders: any mode, any size, any format; at least two images in
# each class so that the holdout split has one of each.
ODD_FOLDERS = fuzzing.image_folder(min_classes=2, max_classes=3,
                                   kinds=(fuzzing.GOOD,)).filter(
    lambda spec: all(len(f) >= 2 for f in spec['classes'].values()))


@settings(max_examples=12, **SETTINGS)
@given(ODD_FOLDERS, st.sampled_from([8, 16, 24]))
def test_mixed_sizes_and_colour_modes_are_converted(spec, size):
    verdict, listing, root = fuzzing.check_folder(spec)
    assert verdict == 'listed', listing
    config = data.DataConfig(dataset=f'image_folder:{root}',
                             image_size=size, batch_size=1, cache='none')
    loaded = data.load_train_data(config)
    for split in (loaded.train, loaded.eval):
        images, labels = next(iter(split))
        assert tuple(images.shape) == (1, size, size, 3)
        assert images.dtype.name == 'float32'
        assert 0 <= int(labels[0]) < len(listing.class_names)
    for path in listing.train_paths + listing.eval_paths:
        image = image_folder.decode_image(path)
        assert image.shape[-1] == 3 and image.dtype.name == 'uint8'


def test_every_mode_and_format_decodes_to_rgb(tmp_path):
    """The conversions the pipeline relies on, one file each."""
    for ext in fuzzing.IMAGE_FORMATS:
        for mode in fuzzing.MODES:
            if (ext, mode) == ('bmp', '1'):
                continue  # refused by the listing (see above)
            path = fuzzing.write(str(tmp_path / f'{mode}.{ext}'.replace(
                ';', '')), fuzzing.image_bytes(ext, mode, (7, 5)))
            image = image_folder.decode_image(path)
            assert tuple(image.shape) == (5, 7, 3), (ext, mode)
