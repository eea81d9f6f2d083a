"""User image folders: layout detection, validation and listing.

Two layouts (the equivalent of `tfds.folder_dataset.ImageFolder`, which
only reads the second one and cannot slice splits):

- class folders directly, `PATH/<class>/*.jpg`: all of it is the training
  data, except a held-out evaluation split of `HOLDOUT_FRACTION` of each
  class (at least one image of every class with two or more images), chosen
  by a fixed hash of the file's relative path, so it never changes with the
  seed;
- split folders, `PATH/train/<class>/*` plus `PATH/val/<class>/*` (or
  `validation/`, or `test/`, in that order of preference): `train/` is the
  training data, the other the evaluation split.

Class names are the sorted class folder names of the training data; label
i is the i-th name. Images are files ending in `IMAGE_EXTENSIONS` (any
case); other files and hidden entries are ignored. Every image's first bytes
are checked for a PNG/JPEG/BMP/GIF signature and end marker (`_readable`)
so that unreadable and truncated files are reported before training instead
of failing in the middle of it.
"""

import dataclasses
import hashlib
import os

from hournas_tf.common.errors import UserError

HOLDOUT_FRACTION = 0.2
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif')
EVAL_SPLIT_NAMES = ('val', 'validation', 'test')
_SIGNATURES = (b'\x89PNG\r\n\x1a\n', b'\xff\xd8\xff', b'BM', b'GIF8')
_MAX_LISTED = 5


@dataclasses.dataclass(frozen=True)
class FolderListing:
    """Image files of a folder: parallel tuples of paths and labels.

    `train_ids` / `eval_ids` are the paths relative to `root` (example ids).
    The train lists are in a fixed pseudo-random order (sorted by a hash of
    the relative path), so any contiguous slice of them is a random sample.
    """

    root: str
    class_names: tuple
    eval_split: str
    train_paths: tuple
    train_labels: tuple
    eval_paths: tuple
    eval_labels: tuple
    num_bytes: int

    @property
    def train_ids(self):
        return tuple(os.path.relpath(p, self.root) for p in self.train_paths)

    @property
    def eval_ids(self):
        return tuple(os.path.relpath(p, self.root) for p in self.eval_paths)


def _listed(names):
    shown = ', '.join(names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        shown += f' and {len(names) - _MAX_LISTED} more'
    return shown


def _subdirs(path):
    return sorted(
        name for name in os.listdir(path)
        if not name.startswith('.')
        and os.path.isdir(os.path.join(path, name))
    )


def _images(path):
    return sorted(
        os.path.join(path, name) for name in os.listdir(path)
        if not name.startswith('.')
        and name.lower().endswith(IMAGE_EXTENSIONS)
        and os.path.isfile(os.path.join(path, name))
    )


def _hash_key(root, path):
    rel = os.path.relpath(path, root).replace(os.sep, '/')
    return hashlib.sha1(rel.encode('utf-8')).hexdigest()


# Bytes read from the end of a file to find its format's end marker.
_TAIL = 4096


def _readable(path):
    """Whether `path` is a whole PNG/JPEG/BMP/GIF file that TensorFlow
    decodes: its signature, its end marker (so a file cut short is caught
    here, not in the middle of training) and, for BMP, the size its header
    gives and 8, 24 or 32 bits per pixel. Reads the first and last bytes
    only; a file damaged inside still fails where it is decoded."""
    try:
        with open(path, 'rb') as f:
            head = f.read(32)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL))
            tail = f.read()
    except OSError:
        return False
    if head.startswith(_SIGNATURES[0]):  # PNG: the IEND chunk
        return b'IEND' in tail
    if head.startswith(_SIGNATURES[1]):  # JPEG: the end-of-image marker
        return b'\xff\xd9' in tail
    if head.startswith(_SIGNATURES[2]):  # BMP
        if len(head) < 30:
            return False
        declared = int.from_bytes(head[2:6], 'little')
        bits = int.from_bytes(head[28:30], 'little')
        return size >= declared and bits in (8, 24, 32)
    if head.startswith(_SIGNATURES[3]):  # GIF: the trailer byte
        return tail.rstrip(b'\0').endswith(b';')
    return False


def _layout(root):
    """Returns (train_dir, eval_dir or None, eval split name)."""
    subdirs = _subdirs(root)
    if 'train' in subdirs and _subdirs(os.path.join(root, 'train')):
        for name in EVAL_SPLIT_NAMES:
            if name in subdirs:
                return os.path.join(root, 'train'), os.path.join(root, name), \
                    name
    return root, None, 'holdout'


def _class_images(root, split_dir, what):
    """{class name: sorted image paths} of one split folder, validated."""
    classes = _subdirs(split_dir)
    if len(classes) < 2:
        found = f' ({", ".join(classes)})' if classes else ''
        raise UserError(
            f'image folder {what} has {len(classes)} class folder(s){found}; '
            f'need at least 2 subfolders with one class of images each, '
            f'e.g. {os.path.join(split_dir, "cat")}/*.jpg'
        )
    images = {name: _images(os.path.join(split_dir, name)) for name in classes}
    empty = [name for name, paths in images.items() if not paths]
    if len(empty) == len(classes):
        raise UserError(
            f'image folder {what} has no images '
            f'({", ".join(IMAGE_EXTENSIONS)}) in its class folders '
            f'{_listed(classes)}'
        )
    if empty:
        raise UserError(
            f'image folder {what} has class folders without images: '
            f'{_listed(empty)}'
        )
    bad = [
        os.path.relpath(path, root)
        for paths in images.values() for path in paths
        if not _readable(path)
    ]
    if bad:
        raise UserError(
            f'image folder {what} has {len(bad)} unreadable image file(s) '
            f'(not a whole PNG/JPEG/BMP/GIF file, e.g. cut short): '
            f'{_listed(bad)}'
        )
    return images


def list_folder(path):
    """Validates an image folder and returns its `FolderListing`."""
    root = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(root):
        raise UserError(
            f'image folder {path} does not exist or is not a directory'
        )
    train_dir, eval_dir, eval_split = _layout(root)
    train = _class_images(root, train_dir, train_dir)
    class_names = tuple(sorted(train))
    label_of = {name: i for i, name in enumerate(class_names)}
    train_items, eval_items = [], []
    if eval_dir is None:
        for name, paths in train.items():
            paths = sorted(paths, key=lambda p: _hash_key(root, p))
            held = 0
            if len(paths) >= 2:
                held = max(1, int(round(HOLDOUT_FRACTION * len(paths))))
            eval_items += [(p, label_of[name]) for p in paths[:held]]
            train_items += [(p, label_of[name]) for p in paths[held:]]
    else:
        evals = _class_images(root, eval_dir, eval_dir)
        unknown = sorted(set(evals) - set(class_names))
        if unknown:
            raise UserError(
                f'image folder {eval_dir} has classes not in '
                f'{train_dir}: {_listed(unknown)}'
            )
        for name, paths in train.items():
            train_items += [(p, label_of[name]) for p in paths]
        for name, paths in evals.items():
            eval_items += [(p, label_of[name]) for p in paths]
    train_items.sort(key=lambda item: _hash_key(root, item[0]))
    eval_items.sort(key=lambda item: (item[1], item[0]))
    num_bytes = sum(os.path.getsize(p) for p, _ in train_items)
    return FolderListing(
        root=root,
        class_names=class_names,
        eval_split=eval_split,
        train_paths=tuple(p for p, _ in train_items),
        train_labels=tuple(label for _, label in train_items),
        eval_paths=tuple(p for p, _ in eval_items),
        eval_labels=tuple(label for _, label in eval_items),
        num_bytes=num_bytes,
    )


def decode_image(path):
    """Reads and decodes one image file to uint8 [H, W, 3]."""
    import tensorflow as tf

    image = tf.io.decode_image(
        tf.io.read_file(path), channels=3, expand_animations=False
    )
    return tf.ensure_shape(image, [None, None, 3])


def examples(listing, split, ranges=None):
    """tf.data of dicts {'image' uint8 [H, W, 3], 'label' int32, 'id'}.

    `split` is 'train' or 'eval'; `ranges` optionally keeps only the
    examples in these (start, stop) index ranges of the split, in order.
    The id is the file's path relative to the folder.
    """
    import tensorflow as tf

    if split == 'train':
        paths, labels = listing.train_paths, listing.train_labels
    else:
        paths, labels = listing.eval_paths, listing.eval_labels
    if ranges is not None:
        rows = [i for start, stop in ranges for i in range(start, stop)]
        paths = [paths[i] for i in rows]
        labels = [labels[i] for i in rows]
    ids = [os.path.relpath(p, listing.root) for p in paths]
    ds = tf.data.Dataset.from_tensor_slices({
        'path': tf.constant(list(paths), tf.string),
        'label': tf.constant(list(labels), tf.int32),
        'id': tf.constant(ids, tf.string),
    })

    def decode(example):
        return {
            'image': decode_image(example['path']),
            'label': example['label'],
            'id': example['id'],
        }

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
