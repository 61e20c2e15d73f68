"""The marketplace's fixed vocabularies: business lines, categories, cities, brands.

Categorical item and user columns are stored as small integer codes into these tuples, so a
feature column is a compact numpy array and a filter is an integer comparison. The tuples are
append-only: a code, once published in a snapshot, must keep its meaning.
"""

from __future__ import annotations

LINES: tuple[str, ...] = ("house_rent", "house_sale", "car", "job", "service", "goods")

# Categories per business line; the item's `category` code indexes CATEGORIES (flat).
CATEGORIES_BY_LINE: dict[str, tuple[str, ...]] = {
    "house_rent": ("whole_rent", "shared_rent", "short_rent"),
    "house_sale": ("new_home", "resale_home", "villa"),
    "car": ("sedan", "suv", "mpv", "truck"),
    "job": ("sales", "driver", "cook", "it", "clerk", "nanny"),
    "service": ("moving", "cleaning", "repair", "renovation", "tutoring"),
    "goods": ("phone", "furniture", "appliance", "bicycle", "baby"),
}
CATEGORIES: tuple[str, ...] = tuple(c for line in LINES for c in CATEGORIES_BY_LINE[line])
CATEGORY_LINE: tuple[int, ...] = tuple(
    LINES.index(line) for line in LINES for _ in CATEGORIES_BY_LINE[line]
)

# Brands (cars and goods) with their series; `brand` and `series` are flat codes.
CAR_BRANDS: dict[str, tuple[str, ...]] = {
    "Volkswagen": ("Lavida", "Sagitar", "Passat", "Tiguan"),
    "Toyota": ("Corolla", "Camry", "RAV4"),
    "Honda": ("Civic", "Accord", "CR-V"),
    "BYD": ("Qin", "Han", "Song", "Tang"),
    "Geely": ("Emgrand", "Boyue", "Xingyue"),
    "BMW": ("3 Series", "5 Series", "X3"),
    "Mercedes": ("C-Class", "E-Class", "GLC"),
    "Audi": ("A4L", "A6L", "Q5L"),
    "Nissan": ("Sylphy", "Teana", "X-Trail"),
    "Buick": ("Excelle", "Regal", "GL8"),
    "Changan": ("CS75", "Eado", "UNI-K"),
    "Tesla": ("Model 3", "Model Y"),
}
GOODS_BRANDS: dict[str, tuple[str, ...]] = {
    "Apple": ("iPhone 13", "iPhone 14", "iPhone 15"),
    "Huawei": ("Mate 50", "P60", "nova 11"),
    "Xiaomi": ("Mi 13", "Redmi K60", "Mi 14"),
    "IKEA": ("sofa", "wardrobe", "bed"),
    "Midea": ("air conditioner", "fridge", "washer"),
    "Haier": ("fridge", "washer", "water heater"),
    "Giant": ("ATX", "Escape"),
    "Goodbaby": ("stroller", "crib"),
}
BRANDS: tuple[str, ...] = (*CAR_BRANDS, *GOODS_BRANDS)
SERIES: tuple[str, ...] = tuple(
    s for table in (CAR_BRANDS, GOODS_BRANDS) for b in table for s in table[b]
)
SERIES_BRAND: tuple[int, ...] = tuple(
    BRANDS.index(b) for table in (CAR_BRANDS, GOODS_BRANDS) for b in table for _ in table[b]
)

JOB_TYPES: tuple[str, ...] = ("full_time", "part_time", "internship")
SALARY_BANDS: tuple[str, ...] = ("<3k", "3-5k", "5-8k", "8-12k", "12-20k", ">20k")
PLATFORMS: tuple[str, ...] = ("android", "ios", "web", "m")
CONVERT_SUBTYPES: tuple[str, ...] = ("chat", "call", "favorite", "share")
AGE_BANDS: tuple[str, ...] = ("<25", "25-34", "35-44", "45+")
GENDERS: tuple[str, ...] = ("f", "m", "u")

# (city, latitude, longitude, size weight, price tier 1..3, districts)
CITIES: tuple[tuple[str, float, float, float, int, tuple[str, ...]], ...] = (
    ("Beijing", 39.904, 116.407, 10.0, 3,
     ("Chaoyang", "Haidian", "Dongcheng", "Xicheng", "Fengtai", "Tongzhou", "Changping")),
    ("Shanghai", 31.230, 121.474, 10.0, 3,
     ("Pudong", "Xuhui", "Jingan", "Minhang", "Changning", "Yangpu", "Baoshan")),
    ("Guangzhou", 23.129, 113.264, 7.0, 3,
     ("Tianhe", "Yuexiu", "Haizhu", "Baiyun", "Panyu", "Huangpu")),
    ("Shenzhen", 22.543, 114.058, 7.0, 3,
     ("Futian", "Nanshan", "Luohu", "Baoan", "Longgang", "Longhua")),
    ("Chengdu", 30.573, 104.066, 5.0, 2,
     ("Jinjiang", "Wuhou", "Qingyang", "Chenghua", "Jinniu", "Gaoxin")),
    ("Hangzhou", 30.274, 120.155, 5.0, 2,
     ("Xihu", "Shangcheng", "Gongshu", "Binjiang", "Xiaoshan", "Yuhang")),
    ("Wuhan", 30.593, 114.305, 4.0, 2,
     ("Jiangan", "Wuchang", "Hongshan", "Hanyang", "Jianghan")),
    ("Chongqing", 29.563, 106.551, 4.5, 2,
     ("Yuzhong", "Jiangbei", "Nanan", "Shapingba", "Yubei")),
    ("Nanjing", 32.060, 118.797, 4.0, 2,
     ("Xuanwu", "Qinhuai", "Gulou", "Jianye", "Jiangning")),
    ("Tianjin", 39.343, 117.362, 3.5, 2,
     ("Heping", "Hexi", "Nankai", "Hedong", "Binhai")),
    ("Xian", 34.341, 108.940, 3.5, 1,
     ("Yanta", "Beilin", "Lianhu", "Xincheng", "Weiyang")),
    ("Suzhou", 31.299, 120.585, 3.0, 2,
     ("Gusu", "Wuzhong", "Xiangcheng", "Huqiu", "Yuanqu")),
    ("Zhengzhou", 34.746, 113.625, 3.0, 1,
     ("Jinshui", "Erqi", "Zhongyuan", "Guancheng", "Huiji")),
    ("Changsha", 28.228, 112.939, 3.0, 1,
     ("Yuelu", "Furong", "Tianxin", "Kaifu", "Yuhua")),
    ("Shenyang", 41.806, 123.432, 2.5, 1,
     ("Heping", "Shenhe", "Huanggu", "Tiexi", "Hunnan")),
    ("Qingdao", 36.067, 120.383, 2.5, 2,
     ("Shinan", "Shibei", "Licang", "Laoshan", "Huangdao")),
    ("Jinan", 36.651, 117.120, 2.0, 1,
     ("Lixia", "Shizhong", "Huaiyin", "Tianqiao", "Licheng")),
    ("Dalian", 38.914, 121.615, 2.0, 1,
     ("Zhongshan", "Xigang", "Shahekou", "Ganjingzi")),
    ("Xiamen", 24.480, 118.089, 2.0, 2,
     ("Siming", "Huli", "Jimei", "Haicang")),
    ("Kunming", 25.040, 102.712, 2.0, 1,
     ("Wuhua", "Panlong", "Guandu", "Xishan")),
    ("Hefei", 31.821, 117.227, 2.0, 1,
     ("Luyang", "Yaohai", "Shushan", "Baohe")),
    ("Fuzhou", 26.074, 119.296, 1.8, 1,
     ("Gulou", "Taijiang", "Cangshan", "Jinan")),
    ("Harbin", 45.803, 126.535, 1.8, 1,
     ("Daoli", "Nangang", "Daowai", "Xiangfang")),
    ("Ningbo", 29.868, 121.544, 1.8, 2,
     ("Haishu", "Jiangbei", "Yinzhou", "Zhenhai")),
)
CITY_NAMES: tuple[str, ...] = tuple(c[0] for c in CITIES)
# Districts are a flat vocabulary too: DISTRICTS[i] = (city code, district name).
DISTRICTS: tuple[tuple[int, str], ...] = tuple(
    (ci, d) for ci, c in enumerate(CITIES) for d in c[5]
)


def code(vocab: tuple[str, ...], value: str, field: str) -> int:
    """The integer code of `value` in `vocab`, or a ValueError naming `field`."""
    try:
        return vocab.index(value)
    except ValueError:
        raise ValueError(f"{field}: unknown value {value!r}") from None
