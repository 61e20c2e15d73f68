import numpy as np
import pyarrow as pa

from tuijian.data.signatures import BANDS, jaccard, text_bands


def _sim(a: str, b: str) -> float:
    bands = text_bands(pa.array([a, b]))
    return float(jaccard(bands[:1], bands[1:])[0])


def test_minhash_estimates_jaccard_of_word_sets() -> None:
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(400)]
    errors = []
    for _ in range(40):
        shared = list(rng.choice(vocab, 30, replace=False))
        a = shared + [f"a{i}" for i in range(int(rng.integers(0, 30)))]
        b = shared + [f"b{i}" for i in range(int(rng.integers(0, 30)))]
        # unigrams and bigrams of space-joined sorted words: the true Jaccard of token sets
        ta = set(a) | {f"{x} {y}" for x, y in zip(a, a[1:], strict=False)}
        tb = set(b) | {f"{x} {y}" for x, y in zip(b, b[1:], strict=False)}
        truth = len(ta & tb) / len(ta | tb)
        errors.append(_sim(" ".join(a), " ".join(b)) - truth)
    assert abs(float(np.mean(errors))) < 0.05 and float(np.std(errors)) < 0.1


def test_reposts_look_alike_and_other_listings_do_not() -> None:
    title = "Chaoyang 2BR 80m² whole rent near subway south facing new kitchen ¥5500/mo"
    assert _sim(title, title + " (urgent)") > 0.7
    assert _sim(title, "Haidian 1BR 45m² shared rent quiet street pets ok ¥2100/mo") < 0.3
    # Chinese has no spaces: Han characters are tokens of their own
    zh = "朝阳区两室一厅整租近地铁南北通透拎包入住月租五千五"
    assert _sim(zh, zh + "急租") > 0.7
    assert _sim(zh, "海淀区一室合租安静小区可养宠物月租两千一") < 0.3


def test_signature_shape_and_tokenless_rows_match_nothing() -> None:
    bands = text_bands(pa.array(["", "!!!", "a b c"]), pa.array([None, None, "d"]))
    assert bands.shape == (3, BANDS) and bands.dtype == np.int64
    assert jaccard(bands[:1], bands[1:2])[0] < 0.2
