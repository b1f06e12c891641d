from depictqa.eval import load_ground_truth, pair_choice, rating_baselines, run_baselines

from tests.eval.conftest import noisy, smooth_image


def test_every_metric_prefers_less_noise():
    ref = smooth_image(64)
    picks = pair_choice(ref, noisy(ref, 0.02), noisy(ref, 0.2, seed=3))
    assert picks["PSNR"] == picks["SSIM"] == picks["VIF"] == picks["UQI"] == "A"
    assert picks["MS-SSIM"] is None  # 64 px is too small for 5 scales: skipped, not guessed
    picks = pair_choice(ref, noisy(ref, 0.2, seed=3), noisy(ref, 0.02))
    assert picks["PSNR"] == picks["SSIM"] == "B"


def test_ms_ssim_runs_on_big_images():
    ref = smooth_image(176)
    assert pair_choice(ref, noisy(ref, 0.02), noisy(ref, 0.2, seed=3), ["MS-SSIM"]) == {"MS-SSIM": "A"}


def test_rating_baselines_on_gt_file(compare_set):
    gt = load_ground_truth(compare_set)
    acc = rating_baselines(gt)
    assert acc["PSNR"] == acc["SSIM"] == 1.0
    full = run_baselines(gt)
    assert full["n_nr_skipped"] == 1 and full["n_pairs"]["PSNR"] == 3
    assert full["n_pairs"]["MS-SSIM"] == 0 and "MS-SSIM" in full["notes"]
