"""Dataset readers on real folders in each benchmark layout: boxes, flags, attributes, lazy frames, errors."""
import json

import cv2
import numpy as np
import pytest

from dataset_fixtures import box_lines, moving_sequences, write_frames, write_uav_dataset
from mlkd_tracker.errors import SourceError
from mlkd_training.data.readers import UAV123_ATTRIBUTES, detect_kind, open_dataset, parse_boxes, read_boxes


def test_parse_boxes_separators_nan_and_empty_lines():
    text = "1,2,3,4\n5\t6\t7\t8\n9 10  11 12\nNaN,NaN,NaN,NaN\n\n1.5, 2.5 ,3,4\n\n\n"
    boxes = parse_boxes(text, "x.txt")
    assert boxes.shape == (6, 4)  # trailing blank lines are not rows, the inner one is
    np.testing.assert_array_equal(boxes[:3], [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    assert np.isnan(boxes[3]).all() and np.isnan(boxes[4]).all()
    np.testing.assert_array_equal(boxes[5], [1.5, 2.5, 3, 4])
    assert parse_boxes("", "x").shape == (0, 4)


@pytest.mark.parametrize("text,line", [("1,2,3,4\n1,2,x,4\n", 2), ("1,2,3\n", 1), ("1,2,3,4\n4,5,6,7,8\n", 2),
                                       ("1,,3,4\n", 1), ("0 0 1 1\n0 0 1 1\ngarbage\n", 3)])
def test_garbage_names_file_and_line(text, line, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(SourceError, match=rf"bad\.txt:{line}: expected 4 numbers x,y,w,h"):
        read_boxes(path)


def test_uav_layout_reads_boxes_attributes_and_frames_lazily(tmp_path):
    gts = write_uav_dataset(tmp_path / "UAVDark135", count=3, frames=8)
    att = tmp_path / "UAVDark135" / "anno" / "att"
    att.mkdir()
    (att / "seq1.txt").write_text("1,0,0,1,0,0,0,0,1,0,0,1\n")
    ds = open_dataset(tmp_path / "UAVDark135")
    assert ds.name == "UAVDark135" and [s.name for s in ds] == ["seq1", "seq2", "seq3"]
    np.testing.assert_array_equal(ds["seq2"].gt, gts["seq2"])
    assert ds["seq1"].attrs == {a: a in ("SV", "FM", "IV", "SOB") for a in UAV123_ATTRIBUTES}
    assert ds.attribute_names == sorted(UAV123_ATTRIBUTES)
    # frames are paths until asked for; a frame corrupted after opening fails only when read
    seq = ds["seq3"]
    seq.store.paths[4].write_bytes(b"not a jpeg")
    assert seq.frame(0).shape == (90, 120, 3)
    with pytest.raises(SourceError, match="000005.jpg"):
        seq.frame(4)


def test_uav_nested_layouts_and_uavdark70_frame_folder(tmp_path):
    gts = write_uav_dataset(tmp_path / "d70", count=2, frame_dir="Seq")
    assert detect_kind(tmp_path / "d70") == "uav"
    np.testing.assert_array_equal(open_dataset(tmp_path / "d70", "uavdark70")["seq2"].gt, gts["seq2"])
    root = tmp_path / "UAV123style"
    (root / "anno" / "UAV123").mkdir(parents=True)
    imgs, boxes = moving_sequences(1, 5)[0]
    write_frames(root / "data_seq" / "UAV123" / "bike1", imgs)
    (root / "anno" / "UAV123" / "bike1.txt").write_text(box_lines(boxes[:3], "\t") + "\nNaN,NaN,NaN,NaN\n\n")
    seq = open_dataset(root)["bike1"]
    assert len(seq) == 5 and np.isnan(seq.gt[3:]).all()
    assert seq.valid.tolist() == [True, True, True, False, False]


def test_more_frames_than_boxes_keeps_annotated_frames_more_boxes_is_an_error(tmp_path):
    write_uav_dataset(tmp_path / "d", count=1, frames=6)
    anno = tmp_path / "d" / "anno" / "seq1.txt"
    anno.write_text("".join(anno.read_text().splitlines(True)[:4]))
    with pytest.warns(UserWarning, match="6 frames but 4 boxes"):
        assert len(open_dataset(tmp_path / "d")["seq1"]) == 4
    anno.write_text(anno.read_text() * 3)
    with pytest.raises(SourceError, match="12 boxes but only 6 frames"):
        open_dataset(tmp_path / "d")


def test_got10k_absence_cover_and_test_split(tmp_path):
    root = tmp_path / "GOT-10k_val"
    for k, (imgs, boxes) in enumerate(moving_sequences(2, 6)):
        folder = root / f"GOT-10k_Val_{k + 1:06d}"
        write_frames(folder, imgs, "{:08d}.jpg")
        (folder / "groundtruth.txt").write_text(box_lines(boxes if k == 0 else boxes[:1]))
        (folder / "absence.label").write_text("0\n0\n1\n0\n0\n0\n")
        (folder / "cover.label").write_text("8\n8\n0\n5\n8\n8\n")
    (root / "list.txt").write_text("GOT-10k_Val_000001\nGOT-10k_Val_000002\n")
    ds = open_dataset(root)
    val, test = ds.sequences
    assert detect_kind(root) == "got10k" and val.absent.tolist() == [False, False, True, False, False, False]
    assert val.attrs["occlusion"].tolist() == [False, False, True, True, False, False]
    assert val.valid.tolist() == [True, True, False, True, True, True]
    assert len(test) == 6 and test.valid.tolist() == [True] + [False] * 5  # first box only
    (root / "GOT-10k_Val_000001" / "cover.label").write_text("8\n9\n8\n8\n8\n8\n")
    with pytest.raises(SourceError, match=r"cover\.label: labels must be 0\.\.8"):
        open_dataset(root)


def test_lasot_class_folders_and_absent_flags(tmp_path):
    root = tmp_path / "LaSOTBenchmark"
    (imgs, boxes), (imgs2, boxes2) = moving_sequences(2, 5)
    for name, ims, bxs in (("airplane-1", imgs, boxes), ("airplane-13", imgs2, boxes2)):
        folder = root / "airplane" / name
        write_frames(folder / "img", ims, "{:08d}.jpg")
        (folder / "groundtruth.txt").write_text(box_lines(bxs))
        (folder / "full_occlusion.txt").write_text("0,0,1,0,0")
        (folder / "out_of_view.txt").write_text("0,0,0,0,1")
    ds = open_dataset(root)
    assert detect_kind(root) == "lasot" and [s.name for s in ds] == ["airplane-1", "airplane-13"]
    assert ds["airplane-1"].absent.tolist() == [False, False, True, False, True]
    assert ds["airplane-13"].attrs["out_of_view"].tolist() == [False] * 4 + [True]
    assert len(open_dataset(root, "lasot", sequences=["airplane-13"])) == 1


def test_pysot_json_with_attributes_and_visibility(tmp_path):
    (imgs, boxes), = moving_sequences(1, 4)
    write_frames(tmp_path / "car1" / "img", imgs, "{:04d}.jpg")
    meta = {"car1": {"video_dir": "car1", "init_rect": list(boxes[0]),
                     "img_names": [f"car1/img/{i + 1:04d}.jpg" for i in range(4)],
                     "gt_rect": [list(b) for b in boxes[:3]] + [[]], "attr": ["FM", "IV"], "absent": [1, 1, 0, 1]}}
    (tmp_path / "Night.json").write_text(json.dumps(meta))
    seq = open_dataset(tmp_path)["car1"]
    assert detect_kind(tmp_path) == "pysot" and open_dataset(tmp_path / "Night.json").name == "Night"
    assert open_dataset(tmp_path).name == "Night"  # a folder holding one JSON is named after the JSON
    np.testing.assert_array_equal(seq.gt[:3], boxes[:3])
    assert np.isnan(seq.gt[3]).all() and seq.attrs == {"FM": True, "IV": True}
    assert seq.absent.tolist() == [False, False, True, False]
    meta["car1"]["gt_rect"][1] = [1, 2, 3]
    (tmp_path / "Night.json").write_text(json.dumps(meta))
    with pytest.raises(SourceError, match=r"Night\.json \[car1\]: gt_rect\[1\] expected 4 numbers"):
        open_dataset(tmp_path)
    meta["car1"]["img_names"][3] = "car1/img/missing.jpg"
    (tmp_path / "Night.json").write_text(json.dumps(meta))
    with pytest.raises(SourceError, match="missing.jpg not found"):
        open_dataset(tmp_path / "Night.json")


@pytest.mark.parametrize("setup,kind,message", [
    (lambda p: None, "auto", "dataset not found"),
    (lambda p: p.mkdir(), "auto", "cannot tell the dataset layout"),
    (lambda p: p.mkdir(), "vot", "unknown dataset kind"),
    (lambda p: (p / "anno").mkdir(parents=True) or (p / "data_seq").mkdir(), "auto", "no annotation files"),
    (lambda p: write_uav_dataset(p, 1) and (p / "anno" / "seq9.txt").write_text("1,1,5,5\n"), "auto",
     r"no frame folder seq9/ or video seq9\.mp4 .* for the box file .*seq9\.txt"),
])
def test_bad_datasets_get_clear_errors(tmp_path, setup, kind, message):
    path = tmp_path / "ds"
    setup(path)
    with pytest.raises(SourceError, match=message):
        open_dataset(path, kind)


def test_frame_order_is_natural(tmp_path):
    folder = tmp_path / "d" / "data_seq" / "s"
    for i in (1, 2, 10):
        cv2.imwrite(str(folder.mkdir(parents=True, exist_ok=True) or folder / f"img{i}.png"),
                    np.full((8, 8, 3), i, np.uint8))
    (tmp_path / "d" / "anno").mkdir()
    (tmp_path / "d" / "anno" / "s.txt").write_text("1,1,3,3\n" * 3)
    seq = open_dataset(tmp_path / "d")["s"]
    assert [p.name for p in seq.store.paths] == ["img1.png", "img2.png", "img10.png"]
    assert seq.frame(2)[0, 0, 0] == 10
