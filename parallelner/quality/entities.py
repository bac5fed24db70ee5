"""Entity verification: is each projected target mention the translation of its source
mention, and nothing more or less?

Stage 1 trusts the LLM's word for each mention and stage 2 finds that word in the
translation; a mention that runs on into the next word, lost a word, belongs to another
entity or is some other span of the sentence passes both. These checks read each
projected entity against its source entity, pure functions over one record:

==========================  ====================================================  =======
per entity                  what it looks at                                      reason
==========================  ====================================================  =======
``roundtrip_score``         what the span reads as in the source language (the     ``entity_roundtrip`` (< ``entity_roundtrip_min``),
                            back-translation request reads back every projected    ``entity_unverified`` (asked, no answer)
                            mention: ``translate.back_translate_entities``) against
                            the source mention: Dice over words (characters in
                            CJK), words matched fuzzily (inflection, accents,
                            spelling of names); word order, an inner "of", an
                            acronym's expansion and a title that the span agrees
                            with ("Mr Barroso" for "Barroso") are forgiven
``numbers_differ``          the digit strings of source and target mention (not    ``entity_numbers``
                            judged when the round trip is perfect)
``implausible``             a target mention without a letter for a source         ``entity_implausible``
                            mention with letters (a price for a person)
``cuts_boundary``           a span that starts or ends inside a word, starts or    ``entity_boundary``
                            ends on an article/preposition of the target language
                            that the source mention does not have, or punctuation,
                            or holds half a bracket pair, or runs on into a
                            punctuation token of its own ("Europa ."); in
                            Chinese, a name cut before its suffix (省, 區...) or
                            inside a transliteration, unless the characters
                            across the edge start another word (希區柯克|因為,
                            地中海|海岸); ``in_gloss``: a source name found
                            only as a bracketed gloss ("多斯（Doss）")
``ambiguous``               the target mention occurs more often in the target     ``entity_ambiguous``
                            than the source mention in the source (outside the
                            other entities' spans): its occurrence was a guess
==========================  ====================================================  =======

``verify_entities(record, q)`` returns a copy whose ``tgt_entities`` carry
``roundtrip_score`` and ``checks``; ``check_entity_verification`` turns them into record
reasons (every one routes to ``review``: a doubtful entity never reaches ``accepted``
silently). Record-level: ``check_unexpected_names`` (the back-translation names someone
the source does not: an entity the translation added) and ``check_script_variant``
(Simplified Chinese where Traditional was asked, or the reverse).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from rapidfuzz import fuzz

from parallelner.detok import NO_SPACE_LANGS
from parallelner.languages import convert_variant, script_of, variant_counts, zh_variant
from parallelner.quality.checks import Finding
from parallelner.quality.language_guess import FUNCTION_WORDS
from parallelner.reasons import Reason
from parallelner.records import Entity, ParallelRecord, ProjectedEntity
from parallelner.settings import QualitySettings

__all__ = [
    "roundtrip_score",
    "numbers_differ",
    "implausible",
    "cuts_boundary",
    "ambiguous",
    "in_gloss",
    "verify_entity",
    "verify_entities",
    "check_entity_verification",
    "check_unexpected_names",
    "check_script_variant",
    "ENTITY_REASONS",
]

ENTITY_REASONS = (
    Reason.ENTITY_ROUNDTRIP,
    Reason.ENTITY_UNVERIFIED,
    Reason.ENTITY_NUMBERS,
    Reason.ENTITY_IMPLAUSIBLE,
    Reason.ENTITY_BOUNDARY,
    Reason.ENTITY_AMBIGUOUS,
)

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
# a unit: one CJK character or a run of other letters/digits
_UNIT = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
_ALNUM = re.compile(r"[^\W_]")

# Articles and the commonest prepositions that a name span does not begin or end with
# (German, Spanish, Italian, French, English, Portuguese, Dutch).
_FUNCTION = frozenset(
    " ".join(
        (
            "the a an of in to at for by on with from and",
            "der die das den dem des ein eine einen einem einer eines und von im am zum zur",
            "mit für el la los las lo un una unos unas y de del al en con por para",
            "il i gli le l uno e di della dello dei degli delle alla nel nella",
            "les une du et au aux dans pour par",
            "o os as um uma do da dos das no na nos nas het een van",
        )
    ).split(" ")
)
_LEADING_ARTICLES = frozenset({"the", "a", "an"})
_LINKS = frozenset({"of", "the"})
# Titles a read-back may add or drop (folded, without the full stop), and the title
# words of target spans that show the span holds one
_TITLES_READ = frozenset(
    " ".join(
        ("mr mrs ms miss dr president commissioner sir madam mister", "herr frau sr sra sig")
    ).split()
)
_TITLES_TARGET = _TITLES_READ | frozenset(
    " ".join(
        (
            "herrn präsident prasident präsidentin prasidentin kommissar kommissarin",
            "señor senor señora senora presidente presidenta comisario comisaria",
            "signor signora onorevole commissario commissaria m mme monsieur madame",
        )
    ).split()
)
_TITLES_ZH = ("先生", "女士", "夫人", "小姐", "總統", "总统", "主席", "博士", "議員", "议员",
              "總理", "总理", "首相", "部長", "部长", "委員", "委员", "教授")  # fmt: skip


@functools.lru_cache(maxsize=1 << 16)  # words and names recur (Zipf): fold each once
def _fold(text: str) -> str:
    """NFKC, case-folded, accents removed."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _bracketed(tgt_text: str, e: ProjectedEntity) -> bool:
    return tgt_text[: e.start].rstrip()[-1:] in ("（", "(") and tgt_text[e.end :].lstrip()[:1] in (
        "）",
        ")",
    )


def _verbatim(source_mention: str, target_mention: str) -> bool:
    """The target span writes the source mention itself (case, accents, spaces aside)."""
    a = "".join(_fold(source_mention).split())
    return a != "" and a == "".join(_fold(target_mention).split())


_DOTTED = re.compile(r"(?<![\w.])((?:\w\.){2,})")  # U.S., U.K.


def _units(text: str) -> list[str]:
    """Comparison units: Traditional folded to Simplified (a read-back may use either),
    dotted acronyms joined (``U.S.`` = ``US``)."""
    text = _DOTTED.sub(lambda m: m.group(1).replace(".", ""), text)
    if _HAN_CHAR.search(text):
        text = convert_variant(text, "hans")
    return _UNIT.findall(_fold(text))


def _acronym_of(short: str, long_: str) -> bool:
    """``EU`` / ``European Union``: the initials of the long form's capitalised words."""
    short = short.replace(".", "").strip()
    if not (2 <= len(short) <= 6 and short.isupper() and short.isalpha()):
        return False
    initials = "".join(w[0] for w in re.findall(r"[^\W\d_]+", long_) if w[0].isupper())
    return initials.upper() == short


def _variants(u: str, v: str) -> bool:
    """Two words that are spellings or inflections of one word: similar (ratio >= 85),
    both of 4+ letters, and not one cut short of the other by two letters or more
    (``Clint``/``Clinton``, ``newspa``/``newspaper`` are not the same word)."""
    if len(u) < 4 or len(v) < 4 or fuzz.ratio(u, v) < 85:
        return False
    short, long_ = sorted((u, v), key=len)
    return not (long_.startswith(short) and len(long_) - len(short) >= 2)


# spelling alternations of transliterated names, folded by ``_spelling_key``
_SPELLING = (("sch", "sh"), ("ph", "f"), ("ck", "k"), ("c", "k"), ("kh", "k"), ("y", "i"),
             ("w", "v"), ("ou", "u"), ("ei", "ai"))  # fmt: skip


def _spelling_key(word: str) -> str:
    """A word with the common spelling alternations of names folded and doubled letters
    single: ``Hillary``/``Hilary``, ``Schulman``/``Shulman``, ``Koch``/``Kokh``."""
    for x, y in _SPELLING:
        word = word.replace(x, y)
    return re.sub(r"(.)\1+", r"\1", word)


def _match_count(a: list[str], b: list[str]) -> int:
    """Units of ``a`` matched one-to-one to units of ``b``: equal, for words of 3+
    letters the same spelling key (``_spelling_key``), for words of 4+ letters spelling
    and inflection variants (``_variants``)."""
    free = Counter(b)
    matched = 0
    rest = []
    for u in a:
        if free[u] > 0:
            free[u] -= 1
            matched += 1
        else:
            rest.append(u)
    later = []
    for u in rest:
        key = _spelling_key(u) if len(u) >= 3 and u.isalpha() else None
        v = next(
            (
                v
                for v, n in free.items()
                if n > 0 and key and len(v) >= 3 and _spelling_key(v) == key
            ),
            None,
        )
        if v is None:
            later.append(u)
        else:
            free[v] -= 1
            matched += 1
    rest = later
    for u in sorted(rest, key=len, reverse=True):
        if len(u) < 4:
            continue
        best, best_score = None, 0.0
        for v, n in free.items():
            if n > 0 and _variants(u, v):
                score = fuzz.ratio(u, v)
                if score > best_score:
                    best, best_score = v, score
        if best is not None:
            free[best] -= 1
            matched += 1
    return matched


def _dice(a: list[str], b: list[str]) -> float:
    return 2 * _match_count(a, b) / (len(a) + len(b)) if a and b else 0.0


def _inner(units: list[str]) -> list[str]:
    """The units without the ``of``/``the`` inside them (not at an edge): "Community of
    Madrid" and "Madrid Community" say the same; "Parliament of" does not."""
    return [u for k, u in enumerate(units) if not (0 < k < len(units) - 1 and u in _LINKS)]


def _strip_title(units: list[str]) -> tuple[list[str], bool]:
    """The units without a leading title (``Mr``, ``President``, ``Herr``...), and
    whether there was one (something must remain)."""
    k = 0
    while k < len(units) - 1 and units[k] in _TITLES_READ:
        k += 1
    return units[k:], k > 0


def _has_title(target_mention: str) -> bool:
    """Whether the target span holds a title word (``Herrn``, ``Sig.``, ``先生``)."""
    words = {_fold(w).rstrip(".") for w in target_mention.split()}
    return bool(words & _TITLES_TARGET) or any(t in target_mention for t in _TITLES_ZH)


def roundtrip_score(
    source_mention: str, read_back: str, target_mention: str | None = None
) -> float:
    """Dice similarity (0..1) of a source mention and what its target span reads as.

    Words (CJK characters) are matched one-to-one, words of four letters or more
    fuzzily (``Parliament``/``Parliaments``, ``Fabergé``/``Faberge``), names of three
    letters or more also by their spelling key (``Hillary``/``Hilary``, ``Koch``/``Kokh``);
    a leading English article is ignored on either side (``the European Parliament``,
    ``The Hague``), and an ``of``/``the`` inside when it is all that differs (``Community of
    Madrid``/``Madrid Community``); Traditional Chinese is folded to Simplified, ``U.S.``
    reads as ``US``, and an acronym matches the initials of its expansion
    (``EU``/``European Union``). 1.0 means every unit of each side is matched.

    With ``target_mention`` (the span read back), a title that the reader added or
    dropped is forgiven where the span agrees: a title added ("Mr Barroso" for
    "Barroso") when the span holds none, a title dropped ("Barroso" for "Mr Barroso")
    when the span holds one; a span that ran on into a title, or lost one, still fails.
    """
    if _acronym_of(source_mention, read_back) or _acronym_of(read_back, source_mention):
        return 1.0
    a, b = _units(source_mention), _units(read_back)
    if a[1:] and a[0] in _LEADING_ARTICLES:  # "The Hague" / "Hague"
        a = a[1:]
    if b[1:] and b[0] in _LEADING_ARTICLES:
        b = b[1:]
    if not a and not b:
        return 1.0 if _fold(source_mention).strip() == _fold(read_back).strip() else 0.0
    if not a or not b:
        return 0.0
    score = _dice(a, b)
    if score < 1.0 and _dice(_inner(a), _inner(b)) == 1.0:
        return 1.0
    if score < 1.0 and target_mention is not None:
        (a_bare, a_title), (b_bare, b_title) = _strip_title(a), _strip_title(b)
        # added by the reader: the span has none; dropped by it: the span has one
        agrees = a_title == _has_title(target_mention) or (a_title and b_title)
        if (a_title or b_title) and agrees and _dice(_inner(a_bare), _inner(b_bare)) == 1.0:
            return 1.0
    return score


_DIGITS = re.compile(r"\d+(?:[.,\u2009\u202f ]\d{3})*(?:[.,]\d+)?")


_ROMAN = {"I": "1", "II": "2", "III": "3", "IV": "4", "V": "5", "VI": "6", "VII": "7",
          "VIII": "8", "IX": "9", "X": "10", "XI": "11", "XII": "12"}  # fmt: skip


def _numbers(text: str) -> Counter[str]:
    text = unicodedata.normalize("NFKC", text)
    found = Counter(re.sub(r"\D", "", m) for m in _DIGITS.findall(text))
    if found:  # "Objetivo I" / "Objective 1": a Roman numeral beside digits counts as one
        found.update(_ROMAN[w] for w in re.findall(r"\b[IVX]+\b", text) if w in _ROMAN)
    return found


def numbers_differ(source_mention: str, target_mention: str) -> bool:
    """Whether the two mentions hold different numbers (digit strings, separators ignored)."""
    a, b = _numbers(source_mention), _numbers(target_mention)
    if a and not b:
        b = Counter(_ROMAN[w] for w in re.findall(r"\b[IVX]+\b", target_mention) if w in _ROMAN)
    elif b and not a:
        a = Counter(_ROMAN[w] for w in re.findall(r"\b[IVX]+\b", source_mention) if w in _ROMAN)
    return a != b


def implausible(source_mention: str, target_mention: str) -> bool:
    """A target mention with no letter at all for a source mention that has letters."""
    return any(c.isalpha() for c in source_mention) and not any(c.isalpha() for c in target_mention)


# Punctuation that a name span neither starts nor ends with (a full stop may end one:
# "B.C.", "Corp.").
_EDGE_PUNCT = frozenset(",;:!?，。、；：！？…")
_HAN_CHAR = re.compile(f"[{_CJK}]")
# Characters that end Chinese place and organisation names (省 province, 市 city,
# 區 district, 島 island...), in both variants.
_ZH_SUFFIX = frozenset(
    "省市縣县區区州郡鎮镇村島岛山河湖海灣湾港峽峡洲國国部局院黨党隊队團团社署廳厅府宮宫寺廟庙站"
)
# 會 ends a name only as the second character of a word (協會 association, 議會 council,
# 委員會 committee...): after any other character it is the verb "will" (溫格|會說).
_ZH_HUI_AFTER = frozenset("協协議议員员學学工商公事金大年覽览運运教國国都峰聯联總总分")
# Characters used to transliterate foreign names (Traditional and Simplified): two of
# them side by side across a span edge are one name cut in two.
_TRANSLIT = frozenset(
    "阿埃艾愛爱昂奧奥巴拜班邦保鮑鲍貝贝彼庇畢毕波伯博布查達达戴丹德迪蒂丁杜敦厄恩法范菲費费芬"
    "弗福富伏蓋盖甘岡冈戈格貢贡古瓜圭哈漢汉豪赫亨胡霍基吉加賈贾傑杰喀卡凱凯坎康柯科克肯庫库寬"
    "宽奎昆拉萊莱蘭兰朗勞劳雷蕾黎里利莉連连列林琳隆盧卢魯鲁路倫伦羅罗洛呂吕瑪玛馬马邁迈麥麦曼"
    "梅門门蒙孟米密敏摩莫墨姆穆納纳娜奈內内尼妮涅聶聂紐纽諾诺歐欧帕派潘培佩彭皮珀普奇齊齐恰喬"
    "乔切欽钦丘瑞若薩萨塞賽赛桑瑟沙莎尚舍申什施史舒斯松蘇苏索塔泰坦湯汤唐特圖图托瓦萬万威韋韦"
    "維维溫温沃烏乌伍武西希錫锡夏謝谢辛休許许雅亞亚揚扬楊杨耶伊依因英尤約约扎詹贊赞澤泽曾朱茲"
    "兹佐爾尔遜逊翰娃絲丝琪珊黛"
)
# Common words that begin with a transliteration or suffix character (因為 because, 尚未
# not yet, 海岸 coast, 部長 minister), or end with one (到達 reach, 委派 appoint): across a
# span edge such a word is the next word, not the rest of the name (希區柯克|因為,
# 地中海|海岸). Traditional; the Simplified forms are derived (``_zh_words``).
_ZH_WORDS_HANT = frozenset(
    " ".join(
        (
            # adverbs, conjunctions and verbs that follow a name
            "因為 因此 因而 尚未 尚且 尚無 尚在 曾經 曾在 曾任 曾是 特別 特地 加入 加上 加強",
            "加以 連同 依然 依舊 依據 依照 尤其 尤為 若是 若要 希望 維持 維護 保持 保護 保證",
            "保留 達成 達到 利用 普遍 許多 許可 約為 約有 派出 派遣 基於 馬上 列為 列入 萬人",
            "萬名 萬元 什麼 西部 西北 西南 內部 內閣 英里 史上 密切 切實 克服 肯定 貢獻 威脅",
            "贊成 贊同 申請 施行 培訓 納入 舒適 費用 勞工 科學 科技 法律 法院 法案 基本 基金",
            "基礎 拉開 恰恰 恰好 布局 邁向 蒙受 沙漠 辛苦 休息 謝謝 溫度 武器 武裝 伊始 佐證",
            # words that end with one and come before a name
            "到達 抵達 表達 傳達 轉達 發達 委派 指派 特派 選派 外派 分派 增派 參加 增加 更加",
            "大約 條約 簽約 合約 國內 境內 之內 城內 島內 公里 這里 那里 哪里 調查 檢查 審查",
            "實施 措施 宣布 公布 發布 分布 部門 專門 系列 允許 也許 或許 原因 基因 精英 感謝",
            "退休 偶爾 道德 憲法 方法 辦法 立法 司法 勝利 權利 順利 歷史 比賽 決賽 覆蓋 涵蓋",
            "接納 採納 容納 森林 秘密 機密 倘若 假若 未曾 不曾 東西 粉絲 表揚 宣揚 示威 權威",
            # words that begin with a suffix character (a suffix is cut off only when it
            # is not the start of the next word)
            "海岸 海邊 海上 海外 海域 海軍 海關 海峽 海洋 山脈 山區 山上 山下 山頂 山谷 河流",
            "河畔 河岸 湖泊 湖畔 島嶼 島上 港口 省份 省長 市長 市場 市民 市區 市政 縣長 區域",
            "州長 州立 鎮長 村民 村莊 部長 部分 部隊 局長 局面 院長 院士 會長 會議 會員 會談",
            "會見 會晤 會上 黨員 隊員 隊長 團長 團體 團隊 社會 社長 社區 署長 廳長 宮殿 寺廟",
            "寺院 站長 國家 國際 國民 國王 國籍 峽谷 灣區",
        )
    ).split()
)


# Transliteration characters that before a name are words of their own: verbs and
# conjunctions (派 send, 連 even, 依 according to, 若 if, 因 because, 曾 once, 尚 still)
_ZH_FREE_BEFORE = frozenset("派連连依若因曾尚")


@functools.cache
def _zh_words() -> frozenset[str]:
    """``_ZH_WORDS_HANT`` in both variants (built once, on first use)."""
    return _ZH_WORDS_HANT | {convert_variant(w, "hans") for w in _ZH_WORDS_HANT}


def _zh_cut(tgt_text: str, start: int, end: int) -> bool:
    """Whether a Chinese span cuts a name: before its own suffix (安大略|省) or in the
    middle of a transliteration (希拉|里, 西格|爾).

    The characters across the edge must plausibly continue the name: not when they begin
    (or, before the span, end) a common word (希區柯克|因為, 地中海|海岸, 到達|奧爾巴尼),
    nor when the character before the span is a word of its own (派|耶穌, "sent Jesus").
    """
    span = tgt_text[start:end]
    words = _zh_words()
    after = tgt_text[end : end + 1]
    if after and tgt_text[end : end + 2] not in words:
        if after in _ZH_SUFFIX or (span[-1] in _TRANSLIT and after in _TRANSLIT):
            return True
        if after in "會会" and span[-1] in _ZH_HUI_AFTER:  # 歐洲議|會
            return True
    before = tgt_text[start - 1] if start > 0 else ""
    return (
        before in _TRANSLIT
        and span[0] in _TRANSLIT
        and before not in _ZH_FREE_BEFORE
        and tgt_text[max(0, start - 2) : start] not in words
    )


_BRACKETS = ("()", "[]", "{}", "（）", "《》", "〈〉", "「」", "『』", "【】", "“”", "‘’", "«»")


def cuts_boundary(
    tgt_text: str, start: int, end: int, tgt_lang: str, source_mention: str = ""
) -> bool:
    """Whether ``tgt_text[start:end]`` starts or ends inside a word (for languages written
    with spaces, or inside a run of Latin letters or digits in any language), starts or
    ends with an article or preposition the source mention does not have, holds one
    half of a bracket or quote pair, or runs on into a punctuation token of tokenized
    text ("Europa ."); in Chinese, cuts a name (``_zh_cut``)."""
    span = tgt_text[start:end]
    if not span.strip():
        return True
    before = tgt_text[start - 1] if start > 0 else " "
    after = tgt_text[end] if end < len(tgt_text) else " "
    spaced = tgt_lang.split("-")[0].lower() not in NO_SPACE_LANGS

    def glued(x: str, y: str) -> bool:
        if not (_ALNUM.match(x) and _ALNUM.match(y)):
            return False
        if spaced:
            return True
        return x.isascii() and y.isascii()  # a Latin word or number cut in CJK text

    if glued(before, span[0]) or glued(span[-1], after):
        return True
    if span[0] in _EDGE_PUNCT or span[-1] in _EDGE_PUNCT:
        return True
    # Chinese writes no spaces: a name cut before its own suffix (安大略|省) or in the
    # middle of a transliteration (希拉|里, 西格|爾)
    if not spaced and _zh_cut(tgt_text, start, end):
        return True
    # tokenized text (Europarl): a span that runs on into a punctuation token of its own
    # ("Europa ." / ". Europa") holds a piece of the sentence, not of the name
    tokens = span.split()
    if len(tokens) > 1 and (_punct_only(tokens[0]) or _punct_only(tokens[-1])):
        return True
    if spaced:  # upper-case words are names: "DE" in "Grupo del PPE / DE", "Objetivo I"
        words = span.split()
        src_words = set(_fold(source_mention).split())

        def function_word(w: str) -> bool:
            return not w.isupper() and _fold(w) in _FUNCTION and _fold(w) not in src_words

        if words and (function_word(words[0]) or (len(words) > 1 and function_word(words[-1]))):
            return True
    return span.count('"') % 2 == 1 or any(span.count(o) != span.count(c) for o, c in _BRACKETS)


# Sentence punctuation and dashes: as a token of its own, never a part of a name
# (brackets and quotes are judged by their pairs; "5 %" and "AT & T" are names)
_TOKEN_PUNCT = frozenset(".,;:!?…¿¡-–—。，、；：！？")


def _punct_only(token: str) -> bool:
    """A token of sentence punctuation alone (``.``, ``,``, ``--``)."""
    return all(c in _TOKEN_PUNCT for c in token)


def in_gloss(tgt_text: str, start: int, end: int) -> bool:
    """Whether the span is a bracketed gloss right after Chinese text: "多斯（Doss）"."""
    head = tgt_text[:start].rstrip()
    return (
        head[-1:] in ("（", "(")
        and bool(_HAN_CHAR.match(head[-2:-1] or " "))
        and tgt_text[end:].lstrip()[:1] in ("）", ")")
    )


def ambiguous(
    source_mention: str,
    src_text: str,
    target_mention: str,
    tgt_text: str,
    others: Iterable[tuple[int, int]] = (),
) -> bool:
    """Whether the target mention occurs more often in the target sentence than the source
    mention in the source sentence: which occurrence is the entity's was a guess.

    Occurrences inside ``others`` (the spans of the other entities: "Comisión" inside
    "Comisión de Industria") do not count.
    """
    if not target_mention:
        return False
    others = list(others)
    n, at = 0, tgt_text.find(target_mention)
    while at != -1:
        end = at + len(target_mention)
        if not any(s <= at and end <= e for s, e in others):
            n += 1
        at = tgt_text.find(target_mention, at + 1)
    return n > max(1, src_text.count(source_mention))


def verify_entity(
    src: Entity,
    e: ProjectedEntity,
    tgt_text: str,
    tgt_lang: str,
    q: QualitySettings,
    src_text: str = "",
    others: Iterable[tuple[int, int]] = (),
    pinned: bool = False,
) -> ProjectedEntity:
    """A copy of ``e`` with its round-trip score and the reason codes of the checks it fails.

    ``pinned``: the model said which occurrence is the entity's, with the words around it
    (``MentionTranslation.context``): no ambiguity finding.

    ``e.back_translation`` None means the round trip was not asked for (no finding);
    an empty string means it was asked and got no answer (``entity_unverified``).
    """
    checks: list[Reason] = []
    score = None
    if e.back_translation is not None:
        if not e.back_translation.strip():
            checks.append(Reason.ENTITY_UNVERIFIED)
        else:
            score = roundtrip_score(src.text, e.back_translation, e.text)
            # a span that writes the source mention itself (a name kept verbatim: "CEN")
            # says exactly the source mention, whatever a model reads it back as
            # ("European Committee for Standardization"); not a name left only in
            # brackets, the gloss of a name the sentence lost
            if score < 1.0 and _verbatim(src.text, e.text) and not _bracketed(tgt_text, e):
                score = 1.0
            if score < q.entity_roundtrip_min - 1e-9:
                checks.append(Reason.ENTITY_ROUNDTRIP)
    # a read-back that says exactly the source mention outranks a number that the
    # translation spelled out ("millennium bug" -> "efecto del año 2000")
    if numbers_differ(src.text, e.text) and score != 1.0:
        checks.append(Reason.ENTITY_NUMBERS)
    if implausible(src.text, e.text):
        checks.append(Reason.ENTITY_IMPLAUSIBLE)
    if cuts_boundary(tgt_text, e.start, e.end, tgt_lang, src.text) or (
        # the source name found only as a gloss: the LLM named some other span, and the
        # name of the sentence is the Chinese before the brackets
        e.method == "source_copy" and in_gloss(tgt_text, e.start, e.end)
    ):
        checks.append(Reason.ENTITY_BOUNDARY)
    if not pinned and ambiguous(src.text, src_text, e.text, tgt_text, others):
        checks.append(Reason.ENTITY_AMBIGUOUS)
    return e.model_copy(update={"roundtrip_score": score, "checks": tuple(checks)})


def verify_entities(record: ParallelRecord, q: QualitySettings) -> ParallelRecord:
    """The record with every projected entity verified (``verify_entity``); unchanged when
    ``q.verify_entities`` is off or nothing was projected."""
    if not record.tgt_entities or record.tgt_text is None:
        return record
    if not q.verify_entities:  # nothing stale from an earlier assessment stays
        if any(e.checks is not None or e.roundtrip_score is not None for e in record.tgt_entities):
            ents = tuple(
                e.model_copy(update={"checks": None, "roundtrip_score": None})
                for e in record.tgt_entities
            )
            return record.model_copy(update={"tgt_entities": ents})
        return record
    n = len(record.src_entities)
    # a span the model pinned with the words around it (the evidence question) is not a
    # guess between occurrences
    pinned = {(m.id, m.pinned(record.tgt_text)) for m in record.mention_translations if m.context}
    ents = tuple(
        verify_entity(
            record.src_entities[e.source_index],
            e,
            record.tgt_text,
            record.tgt_lang,
            q,
            record.src_text,
            [(o.start, o.end) for o in record.tgt_entities if o is not e],
            pinned=(e.source_index, (e.start, e.end)) in pinned,
        )
        if 0 <= e.source_index < n and e.end <= len(record.tgt_text)
        else e
        for e in record.tgt_entities
    )
    return record.model_copy(update={"tgt_entities": ents})


def check_entity_verification(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """The entity checks' reasons on the record (each routes to review), and
    ``entity_roundtrip_min``, the lowest round-trip score of its entities."""
    if not q.verify_entities or not record.tgt_entities:
        return None
    found = {r for e in record.tgt_entities for r in e.checks or ()}
    scores = [e.roundtrip_score for e in record.tgt_entities if e.roundtrip_score is not None]
    return Finding(
        {"entity_roundtrip_min": min(scores)} if scores else {},
        tuple(r for r in ENTITY_REASONS if r in found),
    )


_SENTENCE_END = re.compile(r"[.!?;:。！？；：…\"'“”«»()\[\]-]")


# Words that open English sentences: a capital there says nothing of a name.
_OPENERS = FUNCTION_WORDS["en"] | frozenset(
    [
        "although",
        "though",
        "while",
        "when",
        "whenever",
        "if",
        "so",
        "then",
        "after",
        "before",
        "because",
        "since",
        "until",
        "however",
        "meanwhile",
        "yet",
        "still",
        "also",
        "here",
        "now",
        "today",
        "yesterday",
        "later",
        "earlier",
        "some",
        "many",
        "most",
        "all",
        "one",
        "two",
        "three",
        "four",
        "five",
        "his",
        "her",
        "their",
        "its",
        "our",
        "my",
        "your",
    ]
)


def _names(text: str, lang: str) -> list[str]:
    """Capitalised words of two letters or more. A word opening a sentence counts only
    in English text, and only when it is not a common opener (``Although``)."""
    out = []
    after_end = True
    english = lang.split("-")[0].lower() == "en"
    for m in re.finditer(r"[^\W\d_]+|\S", text):
        tok = m.group()
        if _SENTENCE_END.fullmatch(tok):
            after_end = tok in '.!?。！？:;"“«(-'
            continue
        if (
            len(tok) > 1
            and tok[0].isupper()
            and (not after_end or (english and tok.casefold() not in _OPENERS))
        ):
            out.append(tok)
        after_end = False
    return out


_NOUNS_CAPITALISED = frozenset({"de", "lb", "gsw"})


def check_unexpected_names(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """UNEXPECTED_NAME when the back-translation names something the source does not,
    or names a source name more often than the source does.

    An LLM that adds a person or place to the translation adds it to the back-translation
    too. Latin-script sources: a capitalised word (not opening a sentence) with no
    counterpart among the source's words; other sources: a run of Latin letters that the
    source does not hold.
    """
    bt = record.back_translation
    if not q.verify_entities or not bt or not record.tgt_text:
        return None
    if record.src_lang.split("-")[0].lower() in _NOUNS_CAPITALISED:
        return None  # every German noun is capitalised: capitals say nothing of names
    # Chinese characters are letters to \w: split them off, so the "Riddick" of
    # "中Riddick发现" is a word of the source, as it is of a faithful back-translation
    src_text = _HAN_CHAR.sub(" ", record.src_text)
    raw_words = set(re.findall(r"[^\W\d_]+", src_text))
    src_words = {_fold(w) for w in raw_words}
    src_count = Counter(_fold(w) for w in re.findall(r"[^\W\d_]+", src_text))
    bt_count = Counter(_fold(w) for w in re.findall(r"[^\W\d_]+", bt))
    if script_of(record.src_lang) == "LATIN":
        candidates = _names(bt, record.src_lang)
    else:
        candidates = re.findall(r"[A-Za-z]{2,}", bt)
    for name in candidates:
        f = _fold(name)
        if bt_count[f] > src_count[f] and src_count[f]:
            # a name of the source, once more: "... Parliament ... Parliament ."
            return Finding(reasons=(Reason.UNEXPECTED_NAME,))
        if name.isupper():  # "US" is not the pronoun "us"
            if name in raw_words:
                continue
        elif f in src_words:
            continue
        if len(f) >= 4 and any(len(w) >= 4 and fuzz.ratio(f, w) >= 80 for w in src_words):
            continue
        return Finding(reasons=(Reason.UNEXPECTED_NAME,))
    return None


def check_script_variant(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """WRONG_SCRIPT_VARIANT when a Chinese target asked as Traditional (``zh-Hant``,
    ``zh-TW``...) is written in Simplified characters, or the reverse.

    ``variant_share``: the share of variant-specific characters that belong to the other
    variant. Texts with fewer than two variant-specific characters are not judged.
    """
    want = zh_variant(record.tgt_lang)
    if want is None or not record.tgt_text:
        return None
    trad, simp = variant_counts(record.tgt_text)
    wrong, right = (simp, trad) if want == "hant" else (trad, simp)
    if wrong + right == 0:
        return None
    share = wrong / (wrong + right)
    scores = {"variant_share": share}
    if wrong >= 2 and share > q.max_variant_share:
        return Finding(scores, (Reason.WRONG_SCRIPT_VARIANT,))
    return Finding(scores)
