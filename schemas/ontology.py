"""The unified entity ontology as Python classes, in KnowCoder-X style.

Each entity type is a class whose docstring is the schema the model reads: a
description, the type's names in English and Chinese, and a few example mentions.
Extraction is code generation: ``results = [Person("Barack Obama"), Location("Paris")]``.

The class bodies below are shown to the model verbatim (``class_source``), so keep each
definition self-contained and its docstring in the fixed layout::

    Description: <one sentence>
    Names: <English name> (en); <Chinese name> (zh)
    Examples: <mention>; <mention>; ...

Datasets keep their own labels; ``schemas.label_maps`` maps them onto these classes.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from functools import cache


class Entity:
    """
    Description: The base class for all entities: a named thing, or a value such as a date or an amount, mentioned in text.
    Names: entity (en); 实体 (zh)
    Examples: Barack Obama; 北京; 2019
    """

    def __init__(self, name: str):
        self.name = name


class Person(Entity):
    """
    Description: A human being, real or fictional, referred to by name.
    Names: person (en); 人物 (zh)
    Examples: Barack Obama; Marie Curie; 李白; 周杰伦
    """


class Organization(Entity):
    """
    Description: An organized group of people with a shared purpose, such as an association, institution, party or club.
    Names: organization (en); 组织机构 (zh)
    Examples: United Nations; Red Cross; 北京大学; 中国共产党
    """


class Company(Organization):
    """
    Description: A business or commercial enterprise, including its brands used as the company's name.
    Names: company (en); 公司 (zh)
    Examples: Apple Inc.; Volkswagen; 阿里巴巴; 腾讯
    """


class GovernmentAgency(Organization):
    """
    Description: A government body, ministry, agency, court or legislature at any level.
    Names: government agency (en); 政府机构 (zh)
    Examples: Federal Bureau of Investigation; European Commission; 国务院; 北京市公安局
    """


class SportsTeam(Organization):
    """
    Description: A team or club that competes in a sport.
    Names: sports team (en); 运动队 (zh)
    Examples: Manchester United; Los Angeles Lakers; 广州恒大; 中国女排
    """


class Group(Entity):
    """
    Description: A nationality, religious or political group, or the people of a place named as a group.
    Names: nationality, religious or political group (en); 民族、宗教或政治团体 (zh)
    Examples: Americans; Buddhists; Republicans; 汉族
    """


class Location(Entity):
    """
    Description: A place: a geographical area or natural feature such as a mountain range, river or sea.
    Names: location (en); 地点 (zh)
    Examples: Europe; the Alps; Pacific Ocean; 长江
    """


class GeopoliticalEntity(Location):
    """
    Description: A place with a government: a country, state, province, city or town.
    Names: geopolitical entity (en); 行政区 (zh)
    Examples: France; California; New York City; 广东省
    """


class Address(Location):
    """
    Description: A postal or street address, or a place given by its administrative parts down to a street or building.
    Names: address (en); 地址 (zh)
    Examples: 10 Downing Street; 221B Baker Street; 北京市海淀区中关村大街; 上海市南京路
    """


class Facility(Location):
    """
    Description: A man-made structure or site: a building, airport, bridge, road, stadium or station.
    Names: facility (en); 设施 (zh)
    Examples: Eiffel Tower; Heathrow Airport; Golden Gate Bridge; 首都机场
    """


class Scene(Location):
    """
    Description: A tourist attraction or scenic spot, natural or historic, visited as a destination.
    Names: scenic spot (en); 景点 (zh)
    Examples: Grand Canyon; Yellowstone National Park; 故宫; 西湖
    """


class CreativeWork(Entity):
    """
    Description: A titled work of art or creation: a song, painting, television show, play or other work.
    Names: creative work (en); 作品 (zh)
    Examples: Mona Lisa; Hamlet; Game of Thrones; 《青花瓷》
    """


class Book(CreativeWork):
    """
    Description: A book, novel, comic, textbook or other published written work.
    Names: book (en); 书籍 (zh)
    Examples: War and Peace; Harry Potter; 《红楼梦》; 《三体》
    """


class Movie(CreativeWork):
    """
    Description: A film or movie.
    Names: movie (en); 电影 (zh)
    Examples: Titanic; The Godfather; 《霸王别姬》; 《流浪地球》
    """


class Game(CreativeWork):
    """
    Description: A video game, computer game, mobile game or board game.
    Names: game (en); 游戏 (zh)
    Examples: World of Warcraft; Minecraft; 《王者荣耀》; 英雄联盟
    """


class Law(Entity):
    """
    Description: A named document made into law, such as an act, treaty, constitution or regulation.
    Names: law (en); 法律 (zh)
    Examples: Civil Rights Act; Treaty of Versailles; 《中华人民共和国宪法》; 《民法典》
    """


class Position(Entity):
    """
    Description: A job title, office or role held by a person.
    Names: position (en); 职位 (zh)
    Examples: president; chief executive officer; 总经理; 教授
    """


class Event(Entity):
    """
    Description: A named happening: a war, battle, disaster, sports event, festival or conference.
    Names: event (en); 事件 (zh)
    Examples: World War II; Olympic Games; Hurricane Katrina; 春节联欢晚会
    """


class Product(Entity):
    """
    Description: A named man-made object or product: a vehicle, device, weapon, food or software, but not a service.
    Names: product (en); 产品 (zh)
    Examples: iPhone; Boeing 747; Windows 10; 红旗轿车
    """


class Language(Entity):
    """
    Description: A named human language.
    Names: language (en); 语言 (zh)
    Examples: English; Mandarin; Swahili; 汉语
    """


class Date(Entity):
    """
    Description: An absolute or relative date or period, such as a day, month, year, decade or era.
    Names: date (en); 日期 (zh)
    Examples: June 4, 1989; last year; the 1990s; 2008年8月8日
    """


class Time(Entity):
    """
    Description: A time of day or a span of time shorter than a day.
    Names: time (en); 时间 (zh)
    Examples: 3 p.m.; this morning; two hours; 晚上八点
    """


class Percent(Entity):
    """
    Description: A percentage, including the percent sign or word.
    Names: percent (en); 百分比 (zh)
    Examples: 25%; fifty percent; 百分之三十
    """


class Money(Entity):
    """
    Description: A monetary value, including its unit or currency.
    Names: money (en); 金额 (zh)
    Examples: $5 million; 20 euros; 三百元
    """


class Quantity(Entity):
    """
    Description: A measurement with its unit, such as a weight, distance, area or speed.
    Names: quantity (en); 数量 (zh)
    Examples: 5 kilometers; 300 tons; 10平方米
    """


class Ordinal(Entity):
    """
    Description: An ordinal number: first, second and so on.
    Names: ordinal (en); 序数 (zh)
    Examples: first; 3rd; 第二
    """


class Cardinal(Entity):
    """
    Description: A number that is not a date, time, percent, amount of money, quantity or ordinal.
    Names: cardinal number (en); 基数 (zh)
    Examples: three; 1,000; 数百
    """


class Miscellaneous(Entity):
    """
    Description: A named entity that is not a person, organization or location, such as a nationality, event, work or product in corpora that do not tell these apart.
    Names: miscellaneous (en); 其他实体 (zh)
    Examples: German; Olympics; Windows; 诺贝尔奖
    """


@dataclass(frozen=True)
class TypeInfo:
    """What one ontology class's docstring says, split into its fields."""

    name: str
    description: str
    names: dict[str, str]
    examples: tuple[str, ...]


@cache
def ontology_classes() -> dict[str, type[Entity]]:
    """Return every ontology class by name, the base ``Entity`` first, in definition order."""
    found: dict[str, type[Entity]] = {}
    for name, obj in list(globals().items()):
        if inspect.isclass(obj) and issubclass(obj, Entity) and obj.__module__ == __name__:
            found[name] = obj
    return found


def get_class(name: str) -> type[Entity]:
    """Return the ontology class called ``name``; KeyError lists the known names."""
    classes = ontology_classes()
    try:
        return classes[name]
    except KeyError:
        raise KeyError(f"unknown ontology class {name!r}; known: {', '.join(classes)}") from None


def parent_chain(name: str) -> list[str]:
    """Return ``name`` and its ancestors up to ``Entity``, nearest first: ``[Company, Organization, Entity]``."""
    chain = []
    cls: type = get_class(name)
    while cls is not object:
        chain.append(cls.__name__)
        cls = cls.__bases__[0]
    return chain


@cache
def class_source(name: str) -> str:
    """Return the source text of the class definition exactly as the model is shown it."""
    return textwrap.dedent(inspect.getsource(get_class(name))).rstrip() + "\n"


@cache
def type_info(name: str) -> TypeInfo:
    """Return the description, names by language and examples from a class's docstring."""
    doc = inspect.getdoc(get_class(name)) or ""
    fields: dict[str, str] = {}
    for line in doc.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    names: dict[str, str] = {}
    for part in fields.get("names", "").split(";"):
        label, _, lang = part.strip().rpartition(" (")
        if label and lang.endswith(")"):
            names[lang[:-1]] = label
    examples = tuple(e.strip() for e in fields.get("examples", "").split(";") if e.strip())
    return TypeInfo(name, fields.get("description", ""), names, examples)
