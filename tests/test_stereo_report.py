"""stereo/regions.py and stereo/report.py: region masks, per-region scores, the report files."""

import json

import numpy as np
import pytest

from cnnlab.errors import ConfigError
from cnnlab.stereo.data.datasets import StereoSample, SyntheticStereo
from cnnlab.stereo.evaluation.evaluate import evaluate_samples
from cnnlab.stereo.evaluation.regions import (
    CONTRASTS,
    DEPTH_BINS,
    describe_regions,
    occlusion_from_disparity,
    region_masks,
    texture,
)
from cnnlab.stereo.evaluation.report import analyse, findings, write_report
from cnnlab.stereo.inference.methods import sgbm_method

BORDER = 8  # px: the synthetic pairs are 64 x 128, too small for the default 32


def _pairs() -> SyntheticStereo:
    return SyntheticStereo(count=3, height=64, width=128, max_disparity=24)


def _edge(shape: tuple[int, int], border: int = BORDER) -> np.ndarray:
    rows, columns = np.indices(shape)
    return ((rows < border) | (rows >= shape[0] - border)
            | (columns < border) | (columns >= shape[1] - border))


def exact(sample: StereoSample):
    return sample.disparity.copy(), np.ones(sample.disparity.shape, bool)


def planted(sample: StereoSample):
    """The GT, 5 px too far on the border strip: a D1 and bad-1/2/3 error there, nowhere else."""
    disparity = sample.disparity.copy()
    disparity[_edge(disparity.shape)] += 5.0
    return disparity, np.ones(disparity.shape, bool)


def test_occlusion_is_where_a_nearer_surface_lands_or_the_match_leaves_the_view():
    disparity = np.full((3, 12), 2.0, np.float32)
    valid = np.ones_like(disparity, bool)
    # row 0: a foreground step (x 6-8, d 5) lands on right columns 1-3, hiding the background
    # pixels x 3-5 (d 2) that land there; x 0-1 match outside the view; x 11 has no GT
    disparity[0, 6:9] = 5.0
    disparity[0, 11], valid[0, 11] = 40.0, False
    # row 1: x 4 (d 3) lands with x 3 (d 2) on column 1: exactly 1 px nearer hides nothing;
    # x 9 (d 8.2, no GT) would land there too but an invalid pixel occludes nothing
    disparity[1, 4] = 3.0
    disparity[1, 9], valid[1, 9] = 8.2, False
    # row 2: x 1 - 1.4 = -0.4 is outside the view though it rounds to column 0; x 2 - 1.6 is in
    disparity[2, 1], disparity[2, 2] = 1.4, 1.6
    expected = np.zeros_like(valid)
    expected[0, [0, 1, 3, 4, 5]] = True
    expected[1, [0, 1]] = True
    expected[2, [0, 1]] = True
    np.testing.assert_array_equal(occlusion_from_disparity(disparity, valid), expected)


def test_derived_occlusion_agrees_with_the_synthetic_renderer():
    sample = _pairs().load(0)
    derived = sample.valid & ~occlusion_from_disparity(sample.disparity, sample.valid)
    assert (derived == sample.noc).mean() > 0.98  # the renderer's tolerance is 0.5 px, ours 1


def test_texture_separates_a_flat_image_from_a_checkerboard():
    flat = np.full((40, 64, 3), 120, np.uint8)
    rows, columns = np.indices((40, 64))
    checker = np.repeat((((rows // 4 + columns // 4) % 2) * 255).astype(np.uint8)[..., None], 3,
                        axis=2)
    assert np.all(texture(flat) == 0)
    assert texture(checker).min() > 4.0
    half = flat.copy()
    half[:, 32:] = checker[:, 32:]
    sample = StereoSample("half", half, half, np.full((40, 64), 5.0, np.float32),
                          np.ones((40, 64), bool))
    masks, _ = region_masks(sample, 24, low_texture=4.0, border=4)
    assert masks["low-texture"][:, :28].all() and not masks["low-texture"][:, 36:].any()
    assert (masks["low-texture"] ^ masks["textured"]).all()


def test_region_masks_are_named_described_and_inside_the_valid_pixels():
    sample = _pairs().load(1)
    sample.valid[:5, :] = False  # some pixels without GT
    masks, notes = region_masks(sample, 24, border=BORDER)
    assert notes == {"occlusion": "dataset"}
    assert list(masks) == list(describe_regions(24, border=BORDER))
    assert list(masks)[:7] == ["all", "non-occluded", "occluded", "low-texture", "textured",
                               "border", "interior"]
    for name, mask in masks.items():
        assert mask.dtype == bool and not (mask & ~sample.valid).any(), name
    for hard, easy in CONTRASTS:  # each pair splits the valid pixels
        assert not (masks[hard] & masks[easy]).any() and ((masks[hard] | masks[easy])
                                                          == sample.valid).all()
    bins = sum(masks[name].astype(int) for name, _, _ in DEPTH_BINS)
    assert (bins == sample.valid).all()
    assert masks["occluded"].any() and masks["beyond range"].sum() == 0
    no_mask = StereoSample(sample.name, sample.left, sample.right, sample.disparity,
                           sample.valid)
    masks, notes = region_masks(no_mask, 24, border=BORDER)
    assert notes == {"occlusion": "derived from GT"}
    np.testing.assert_array_equal(masks["occluded"], sample.valid & occlusion_from_disparity(
        sample.disparity, sample.valid))


@pytest.fixture(scope="module")
def planted_analysis():
    lines = []
    analysis = analyse({"exact": exact, "planted": planted}, {"synthetic": _pairs()}, 24,
                       lines.append, border=BORDER, top_k=2)
    return analysis, lines


def test_analyse_counts_the_errors_exactly_where_they_were_planted(planted_analysis):
    analysis, lines = planted_analysis
    assert analysis["methods"] == ["exact", "planted"] and analysis["lead"] == "exact"
    result = analysis["datasets"]["synthetic"]
    assert result["pairs"] == 3 and result["occlusion"] == {"dataset": 3, "derived from GT": 0}
    samples = [_pairs().load(i) for i in range(3)]
    edge = sum(int((_edge(s.valid.shape) & s.valid).sum()) for s in samples)
    valid = sum(int(s.valid.sum()) for s in samples)
    assert result["regions"]["all"]["pixels"] == valid
    assert result["regions"]["border"] == {"pixels": edge, "share": edge / valid}
    for region, scores in result["methods"]["exact"]["regions"].items():
        assert scores["epe"] == 0 and scores["d1"] == 0 and scores["bad1"] == 0, region
    scores = result["methods"]["planted"]["regions"]
    for key in ("d1", "bad1", "bad2", "bad3"):
        assert scores["border"]["counts"][key] == edge
        assert scores["interior"]["counts"][key] == 0
        assert scores["all"]["counts"][key] == edge
    assert scores["border"]["epe"] == pytest.approx(5.0, abs=1e-5)
    assert scores["interior"]["epe"] == 0 and scores["border"]["d1"] == 100.0
    assert [len(row["methods"]) for row in result["per_pair"]] == [2, 2, 2]
    assert len(result["worst"]) == 2  # top_k pictures kept, not one per pair
    assert lines[0].startswith("  [synthetic 1] synthetic/0/0: exact EPE 0.000 px, D1 0.00%")
    assert len(lines) == 3


def test_findings_name_the_planted_region(planted_analysis):
    analysis, _ = planted_analysis
    text = "\n".join(findings(analysis, "synthetic"))
    assert ("Best region for exact against planted: exact makes no D1 error on border pixels, "
            "where planted's D1 is 100.00%.") in text
    assert "planted's D1 is 100.00% on border pixels and 0.00% on interior pixels" in text


def test_the_report_is_written_in_both_formats(planted_analysis, tmp_path):
    analysis, _ = planted_analysis
    card = {"name": "psmnet-kitti2015", "source": {"origin": "the authors' release"}}
    written = write_report(analysis, tmp_path / "report.html", card=card)
    assert written == [tmp_path / "report.html", tmp_path / "report.json"]
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # the chart and the 2 worst pairs
    assert 'src="http' not in page and "<link" not in page and "psmnet-kitti2015" in page
    assert "border pixels" in page and "<strong>exact</strong>" in page
    stored = json.loads((tmp_path / "report.json").read_text())
    assert "images" not in json.dumps(stored)
    assert stored["datasets"]["synthetic"]["regions"] == analysis["datasets"]["synthetic"][
        "regions"]

    written = write_report(analysis, tmp_path / "notes", fmt="markdown")
    assert written[0] == tmp_path / "notes.md" and written[-1] == tmp_path / "notes.json"
    pictures = written[1:-1]
    assert len(pictures) == 3 and all(p.parent == tmp_path / "notes_files" for p in pictures)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pictures)
    text = (tmp_path / "notes.md").read_text()
    assert all(f"](notes_files/{p.name})" in text for p in pictures)
    assert "| border |" in text and "border pixels" in text
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind
    with pytest.raises(ConfigError, match="format pdf"):
        write_report(analysis, tmp_path / "report.pdf", fmt="pdf")


def test_a_predictor_with_holes_scores_as_stereo_eval_does():
    sgbm = sgbm_method(24)
    streamed = (_pairs().load(i) for i in range(3))  # a generator: one pair at a time
    analysis = analyse({"sgbm": sgbm, "exact": exact}, {"synthetic": streamed}, 24,
                       border=BORDER, top_k=1)
    result = analysis["datasets"]["synthetic"]
    assert analysis["lead"] == "sgbm" and 0.3 < result["methods"]["sgbm"]["density"] < 1
    reference = evaluate_samples(sgbm, (_pairs().load(i) for i in range(3)))["aggregate"]
    for ours, theirs in (("all", "all"), ("non-occluded", "noc")):
        scores = result["methods"]["sgbm"]["regions"][ours]
        for key in ("epe", "d1", "bad1", "bad2", "bad3", "pixels"):
            assert scores[key] == pytest.approx(reference[theirs][key], rel=1e-9), (ours, key)
    d1 = [row["methods"]["sgbm"]["d1"] for row in result["per_pair"]]
    assert [entry["name"] for entry in result["worst"]] == [
        result["per_pair"][int(np.argmax(d1))]["name"]]
    assert any("SGBM gave a disparity for" in line for line in findings(analysis, "synthetic"))
