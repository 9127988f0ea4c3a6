"""Parallel zh / es / en lexicon of the synthetic mini corpus.

Every entry is written once with its three surface forms, so a sentence built from
entries is a true translation in all three languages. Spanish agreement (gender,
number, articles, contractions) and English articles are handled by
:mod:`.morphology`; irregular Spanish verbs list only the forms that differ from the
regular paradigm.

Each entry carries two weights, ``read`` and ``conversational``: a 0 makes a word
domain-specific, different non-zero weights give the two domains different word
frequencies over a shared vocabulary.

Tables are ``|``-separated text so that the whole vocabulary fits on a few screens.
"""

from __future__ import annotations

from dataclasses import dataclass

from .morphology import es_adjective, es_conjugate

DOMAINS = ("read", "conversational")


def _weights(field: str) -> tuple[float, float]:
    read, conv = field.split()
    return float(read), float(conv)


def _rows(table: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.split("|")] for line in table.strip().splitlines() if line.strip()
    ]


# ----------------------------------------------------------------------------- nouns


@dataclass(frozen=True)
class Noun:
    zh: str
    classifier: str
    es: str
    es_plural: str
    gender: str  # "m" / "f"
    en: str
    en_plural: str
    categories: frozenset[str]
    weights: tuple[float, float]

    def es_form(self, plural: bool) -> str:
        return self.es_plural if plural else self.es

    def en_form(self, plural: bool) -> str:
        return self.en_plural if plural else self.en


# Categories: p portable, r readable, w writable, s sendable, f food, d drink, v vehicle,
# fu furniture, a appliance, o openable, an animal, b building, home (bought, rented), c clothing,
# k kitchenware, m media (watched / sung), pl plantable.
_NOUNS = """
书|本|libro|libros|m|book|books|p r w|3 2
报纸|份|periódico|periódicos|m|newspaper|newspapers|p r|3 1
信|封|carta|cartas|f|letter|letters|p r w s|2 1
报告|份|informe|informes|m|report|reports|r w s|4 0.5
杂志|本|revista|revistas|f|magazine|magazines|p r|1 1
地图|张|mapa|mapas|m|map|maps|p r|1 1
照片|张|foto|fotos|f|photo|photos|p s|1 2
钥匙|把|llave|llaves|f|key|keys|p|1 3
雨伞|把|paraguas|paraguas|m|umbrella|umbrellas|p|1 2
手机|部|teléfono|teléfonos|m|phone|phones|p a|1 3
电脑|台|computadora|computadoras|f|computer|computers|p a|2 2
手表|块|reloj|relojes|m|watch|watches|p|1 1
钱包|个|cartera|carteras|f|wallet|wallets|p|1 2
包|个|bolso|bolsos|m|bag|bags|p|1 2
笔|支|bolígrafo|bolígrafos|m|pen|pens|p|1 1
箱子|个|caja|cajas|f|box|boxes|p o|1 1
礼物|份|regalo|regalos|m|gift|gifts|p s|1 2
包裹|个|paquete|paquetes|m|package|packages|p s o|1 1
票|张|boleto|boletos|m|ticket|tickets|p|1 2
车|辆|coche|coches|m|car|cars|v|2 2
自行车|辆|bicicleta|bicicletas|f|bicycle|bicycles|v|1 1
公共汽车|辆|autobús|autobuses|m|bus|buses|v|2 0.3
卡车|辆|camión|camiones|m|truck|trucks|v|2 0.3
船|艘|barco|barcos|m|boat|boats|v|1 0.5
桌子|张|mesa|mesas|f|table|tables|fu|1 1
椅子|把|silla|sillas|f|chair|chairs|fu|1 1
沙发|张|sofá|sofás|m|sofa|sofas|fu|0.5 1
床|张|cama|camas|f|bed|beds|fu|0.5 1
灯|盏|lámpara|lámparas|f|lamp|lamps|fu a|0.5 1
冰箱|台|refrigerador|refrigeradores|m|refrigerator|refrigerators|a|0.5 1
洗衣机|台|lavadora|lavadoras|f|washing machine|washing machines|a|0.5 1
电视|台|televisor|televisores|m|television|televisions|a|1 1
门|扇|puerta|puertas|f|door|doors|o|1 1
窗户|扇|ventana|ventanas|f|window|windows|o|1 1
苹果|个|manzana|manzanas|f|apple|apples|f|1 2
橙子|个|naranja|naranjas|f|orange|oranges|f|1 1
鸡蛋|个|huevo|huevos|m|egg|eggs|f|1 1
蛋糕|个|pastel|pasteles|m|cake|cakes|f|0.5 2
面包|个|pan|panes|m|loaf of bread|loaves of bread|f|1 1
三明治|个|sándwich|sándwiches|m|sandwich|sandwiches|f|0.3 2
西瓜|个|sandía|sandías|f|watermelon|watermelons|f|0.5 1
香蕉|根|plátano|plátanos|m|banana|bananas|f|0.5 1
咖啡|杯|café|cafés|m|coffee|coffees|d|0.3 3
茶|杯|té|tés|m|tea|teas|d|0.3 2
果汁|杯|jugo|jugos|m|juice|juices|d|0.3 2
啤酒|瓶|cerveza|cervezas|f|beer|beers|d|0.3 2
水|瓶|botella de agua|botellas de agua|f|bottle of water|bottles of water|d p|1 1
牛奶|瓶|botella de leche|botellas de leche|f|bottle of milk|bottles of milk|d p|1 1
狗|只|perro|perros|m|dog|dogs|an|1 2
猫|只|gato|gatos|m|cat|cats|an|1 2
鸟|只|pájaro|pájaros|m|bird|birds|an|1 1
马|匹|caballo|caballos|m|horse|horses|an|1 0.5
鸭子|只|pato|patos|m|duck|ducks|an|0.5 0.5
房子|栋|casa|casas|f|house|houses|b home|2 1
学校|所|escuela|escuelas|f|school|schools|b|2 0.5
医院|家|hospital|hospitales|m|hospital|hospitals|b|2 0.3
桥|座|puente|puentes|m|bridge|bridges|b|2 0.2
商店|家|tienda|tiendas|f|store|stores|b|2 1
公寓|套|apartamento|apartamentos|m|apartment|apartments|b home|1 1
博物馆|座|museo|museos|m|museum|museums|b|1 0.5
餐厅|家|restaurante|restaurantes|m|restaurant|restaurants|b|1 1
工厂|家|fábrica|fábricas|f|factory|factories|b|2 0
衬衫|件|camisa|camisas|f|shirt|shirts|c|1 2
裙子|条|falda|faldas|f|skirt|skirts|c|0.5 1
外套|件|abrigo|abrigos|m|coat|coats|c|1 1
帽子|顶|sombrero|sombreros|m|hat|hats|c|0.5 1
盘子|个|plato|platos|m|plate|plates|k p|0.5 1
杯子|个|taza|tazas|f|cup|cups|k p|0.5 1
花|朵|flor|flores|f|flower|flowers|p pl|1 1
树|棵|árbol|árboles|m|tree|trees|pl|1 0.5
电影|部|película|películas|f|movie|movies|m|1 2
歌|首|canción|canciones|f|song|songs|m w|1 2
消息|条|mensaje|mensajes|m|message|messages|w s|0.5 3
电子邮件|封|correo|correos|m|email|emails|w s|1 2
"""

NOUNS: list[Noun] = [
    Noun(zh, cls, es, es_pl, g, en, en_pl, frozenset(cats.split()), _weights(w))
    for zh, cls, es, es_pl, g, en, en_pl, cats, w in _rows(_NOUNS)
]

# People a company or a government hires: counted with the classifier 名.
_STAFF = """
工人|名|trabajador|trabajadores|m|worker|workers|staff|1 0
工程师|名|ingeniero|ingenieros|m|engineer|engineers|staff|1 0
护士|名|enfermera|enfermeras|f|nurse|nurses|staff|1 0
老师|名|profesor|profesores|m|teacher|teachers|staff|1 0
医生|名|médico|médicos|m|doctor|doctors|staff|1 0
司机|名|conductor|conductores|m|driver|drivers|staff|1 0
警察|名|policía|policías|m|police officer|police officers|staff|1 0
"""
STAFF: list[Noun] = [
    Noun(zh, cls, es, es_pl, g, en, en_pl, frozenset(cats.split()), _weights(w))
    for zh, cls, es, es_pl, g, en, en_pl, cats, w in _rows(_STAFF)
]

# ------------------------------------------------------------------------- adjectives


@dataclass(frozen=True)
class Adjective:
    zh_attributive: str  # before a noun: 新 书, 漂亮的 书
    zh_predicative: str  # after 太 / 很 / 真: 太 贵 了
    es_base: str  # masculine singular
    en: str
    categories: frozenset[str]
    gradable: bool  # "too ..." / "very ..." make sense
    es_copula_estar: bool  # está roto / es nuevo
    weights: tuple[float, float]

    def es(self, gender: str, plural: bool) -> str:
        return es_adjective(self.es_base, gender, plural)


# flags: g gradable, e Spanish copula estar
_ADJECTIVES = """
新|新|nuevo|new|p v fu a b c|-|3 2
旧|旧|viejo|old|p v fu a b c|g|2 2
大|大|grande|big|p v fu a b c an f|g|2 2
小|小|pequeño|small|p v fu a b c an f|g|2 2
红色的|红|rojo|red|p v fu c f|-|1 1
白色的|白|blanco|white|p v fu c an|-|1 1
黑色的|黑|negro|black|p v fu c an|-|1 1
蓝色的|蓝|azul|blue|p v fu c|-|1 1
绿色的|绿|verde|green|p v fu c f|-|1 1
黄色的|黄|amarillo|yellow|p v fu c f|-|1 0.5
便宜的|便宜|barato|cheap|p v fu a c b f d|g|1 2
昂贵的|贵|caro|expensive|p v fu a c b|g|2 2
漂亮的|漂亮|bonito|beautiful|p v fu c b an|g|1 2
有趣的|有趣|interesante|interesting|r m|g|2 2
重要的|重要|importante|important|r w|g|3 1
好吃的|好吃|delicioso|delicious|f|g e|0.5 2
新鲜的|新鲜|fresco|fresh|f|g e|1 1
干净的|干净|limpio|clean|c fu k|g e|1 1
脏的|脏|sucio|dirty|c fu k v|g e|0.5 2
老|老|viejo|old|an|g|1 1
可爱的|可爱|lindo|cute|an|g|0.3 2
现代的|现代|moderno|modern|b a v fu|g|2 0.5
有名的|有名|famoso|famous|b m|g|2 1
安静的|安静|tranquilo|quiet|b|g|1 1
坏的|坏|roto|broken|a o fu|e|1 1
热的|热|caliente|hot|d|g e|0.5 1
冰的|冰|frío|cold|d|g e|0.5 1
"""

ADJECTIVES: list[Adjective] = [
    Adjective(zh_a, zh_p, es, en, frozenset(cats.split()), "g" in flags, "e" in flags, _weights(w))
    for zh_a, zh_p, es, en, cats, flags, w in _rows(_ADJECTIVES)
]

# ------------------------------------------------------------------------------ verbs


@dataclass(frozen=True)
class Verb:
    zh: str
    es_infinitive: str
    en_base: str
    en_3s: str
    en_past: str
    categories: frozenset[str]
    weights: tuple[float, float]

    def es(self, form: str) -> str:
        return es_conjugate(self.es_infinitive, form)


# zh | es infinitive | en base, 3s, past | object categories | weights
_VERBS = """
买|comprar|buy,buys,bought|p f d v fu a c home k|3 3
卖|vender|sell,sells,sold|p f v fu a home|2 1
找到|encontrar|find,finds,found|p an|1 2
丢|perder|lose,loses,lost|p|0.5 2
带来|traer|bring,brings,brought|p f d|1 2
洗|lavar|wash,washes,washed|v c k|1 2
修理|reparar|repair,repairs,repaired|v a fu o|2 1
读|leer|read,reads,read|r|2 1
写|escribir|write,writes,wrote|w|2 2
打开|abrir|open,opens,opened|o|0.5 1
关上|cerrar|close,closes,closed|o|0.5 1
吃|comer|eat,eats,ate|f|1 3
喝|beber|drink,drinks,drank|d|0.5 3
做|preparar|make,makes,made|f|0.5 2
寄|enviar|send,sends,sent|s|1 2
收到|recibir|receive,receives,received|s|2 1
点|pedir|order,orders,ordered|f d|0.3 2
建造|construir|build,builds,built|home|1 0
参观|visitar|visit,visits,visited|b|2 0.5
租|alquilar|rent,rents,rented|v home|1 1
画|dibujar|draw,draws,drew|an v b pl|1 1
种|plantar|plant,plants,planted|pl|1 0.5
看|ver|watch,watches,watched|m|0.5 2
唱|cantar|sing,sings,sang|m|0.3 1
还|devolver|return,returns,returned|p r|1 1
"""

VERBS: list[Verb] = []
for _zh, _es, _en, _cats, _w in _rows(_VERBS):
    _base, _third, _past = _en.split(",")
    VERBS.append(Verb(_zh, _es, _base, _third, _past, frozenset(_cats.split()), _weights(_w)))


# ----------------------------------------------------------------------------- people


@dataclass(frozen=True)
class Person:
    """A third-person subject: ``el profesor`` / ``the teacher`` / 老师."""

    zh: str
    es: str
    en: str
    gender: str
    plural: bool
    weights: tuple[float, float]

    @property
    def person(self) -> str:
        return "3p" if self.plural else "3s"


_PEOPLE = """
老师|el profesor|the teacher|m|s|2 0.5
老师|la profesora|the teacher|f|s|2 0.5
医生|el médico|the doctor|m|s|2 0.5
医生|la doctora|the doctor|f|s|2 0.5
市长|el alcalde|the mayor|m|s|3 0
市长|la alcaldesa|the mayor|f|s|3 0
经理|el gerente|the manager|m|s|2 0.3
经理|la gerente|the manager|f|s|2 0.3
记者|el periodista|the journalist|m|s|2 0
记者|la periodista|the journalist|f|s|2 0
工程师|el ingeniero|the engineer|m|s|1 0
科学家|la científica|the scientist|f|s|1 0
部长|el ministro|the minister|m|s|2 0
部长|la ministra|the minister|f|s|2 0
校长|la directora|the principal|f|s|1 0.3
农民|el agricultor|the farmer|m|s|1 0
学生们|los estudiantes|the students|m|p|2 0.5
工人们|los trabajadores|the workers|m|p|2 0
护士们|las enfermeras|the nurses|f|p|1 0
孩子们|los niños|the children|m|p|1 1
游客们|los turistas|the tourists|m|p|1 0
邻居们|los vecinos|the neighbors|m|p|1 1
玛丽亚|maría|maria|f|s|1 1
卡洛斯|carlos|carlos|m|s|1 1
安娜|ana|ana|f|s|1 1
胡安|juan|juan|m|s|1 1
路易斯|luis|luis|m|s|1 1
索菲亚|sofía|sofia|f|s|1 1
佩德罗|pedro|pedro|m|s|1 1
露西亚|lucía|lucia|f|s|1 1
"""

PEOPLE: list[Person] = [
    Person(zh, es, en, g, n == "p", _weights(w)) for zh, es, en, g, n, w in _rows(_PEOPLE)
]


@dataclass(frozen=True)
class Relative:
    """A possessable person: 我哥哥 / mi hermano / my brother."""

    zh: str
    es: str
    en: str
    gender: str
    weights: tuple[float, float]


_RELATIVES = """
哥哥|hermano|brother|m|0.3 2
姐姐|hermana|sister|f|0.3 2
妈妈|madre|mother|f|0.3 2
爸爸|padre|father|m|0.3 2
朋友|amigo|friend|m|0.5 3
朋友|amiga|friend|f|0.5 2
女朋友|novia|girlfriend|f|0 1
男朋友|novio|boyfriend|m|0 1
儿子|hijo|son|m|0.3 1
女儿|hija|daughter|f|0.3 1
老板|jefe|boss|m|0.3 1
邻居|vecino|neighbor|m|0.3 1
同事|colega|colleague|m|0.3 1
"""

RELATIVES: list[Relative] = [
    Relative(zh, es, en, g, _weights(w)) for zh, es, en, g, w in _rows(_RELATIVES)
]

# Possessors: zh, es (m, f forms), en.
POSSESSORS: list[tuple[str, str, str, str]] = [
    ("我", "mi", "mi", "my"),
    ("你", "tu", "tu", "your"),
    ("他", "su", "su", "his"),
    ("她", "su", "su", "her"),
    ("我们", "nuestro", "nuestra", "our"),
]

# Conversational subject pronouns: zh, en, Spanish person (Spanish drops the pronoun).
PRONOUNS: list[tuple[str, str, str]] = [
    ("我", "i", "1s"),
    ("我们", "we", "1p"),
    ("你", "you", "2s"),
]

# ----------------------------------------------------------------------- places, time


@dataclass(frozen=True)
class Place:
    zh: str
    es: str  # noun phrase with article, or a bare city name
    en_at: str  # "in the park", "at the bank", "in madrid"
    en_to: str  # "to the park"
    weights: tuple[float, float]


_PLACES = """
公园|el parque|in the park|to the park|1 2
学校|la escuela|at school|to school|1 2
医院|el hospital|at the hospital|to the hospital|1 1
图书馆|la biblioteca|at the library|to the library|1 1
超市|el supermercado|at the supermarket|to the supermarket|0.5 2
市场|el mercado|at the market|to the market|1 1
海边|la playa|at the beach|to the beach|0.5 2
电影院|el cine|at the movies|to the movies|0.3 2
办公室|la oficina|at the office|to the office|1 1
机场|el aeropuerto|at the airport|to the airport|1 1
火车站|la estación|at the station|to the station|1 1
餐厅|el restaurante|at the restaurant|to the restaurant|0.5 2
博物馆|el museo|at the museum|to the museum|1 1
咖啡馆|la cafetería|at the cafe|to the cafe|0.3 2
银行|el banco|at the bank|to the bank|1 1
大学|la universidad|at the university|to the university|1 1
动物园|el zoológico|at the zoo|to the zoo|0.5 1
健身房|el gimnasio|at the gym|to the gym|0.3 1
"""
PLACES: list[Place] = [Place(zh, es, at, to, _weights(w)) for zh, es, at, to, w in _rows(_PLACES)]

_CITIES = """
北京|pekín|beijing|3 1
上海|shanghái|shanghai|2 1
南京|nankín|nanjing|1 0.5
马德里|madrid|madrid|2 1
巴塞罗那|barcelona|barcelona|1 1
墨西哥城|la ciudad de méxico|mexico city|1 1
利马|lima|lima|1 1
波哥大|bogotá|bogota|1 0.5
伦敦|londres|london|1 1
巴黎|parís|paris|1 1
罗马|roma|rome|1 1
柏林|berlín|berlin|1 0.5
东京|tokio|tokyo|1 1
纽约|nueva york|new york|1 1
"""
CITIES: list[Place] = [
    Place(zh, es, f"in {en}", f"to {en}", _weights(w)) for zh, es, en, w in _rows(_CITIES)
]


@dataclass(frozen=True)
class TimeExpression:
    zh: str
    es: str
    en: str
    weights: tuple[float, float]


_WEEKDAYS = [
    ("星期一", "el lunes", "on monday"),
    ("星期二", "el martes", "on tuesday"),
    ("星期三", "el miércoles", "on wednesday"),
    ("星期四", "el jueves", "on thursday"),
    ("星期五", "el viernes", "on friday"),
    ("星期六", "el sábado", "on saturday"),
    ("星期天", "el domingo", "on sunday"),
]

_PAST_TIMES = """
昨天|ayer|yesterday|3 3
前天|anteayer|the day before yesterday|1 1
上周|la semana pasada|last week|2 2
上个月|el mes pasado|last month|2 1
去年|el año pasado|last year|3 1
昨天晚上|anoche|last night|1 2
今天早上|esta mañana|this morning|1 2
上个周末|el fin de semana pasado|last weekend|0.5 2
"""
NEAR_FUTURE = {"明天", "后天", "今天晚上", "今天下午", "这个周末"}  # for making appointments

_FUTURE_TIMES = """
明天|mañana|tomorrow|3 3
后天|pasado mañana|the day after tomorrow|1 1
下周|la próxima semana|next week|2 2
下个月|el próximo mes|next month|2 1
明年|el próximo año|next year|2 1
今天晚上|esta noche|tonight|1 3
今天下午|esta tarde|this afternoon|1 2
这个周末|este fin de semana|this weekend|0.5 3
"""
PAST_TIMES: list[TimeExpression] = [
    TimeExpression(zh, es, en, _weights(w)) for zh, es, en, w in _rows(_PAST_TIMES)
]
FUTURE_TIMES: list[TimeExpression] = [
    TimeExpression(zh, es, en, _weights(w)) for zh, es, en, w in _rows(_FUTURE_TIMES)
]
for _zh, _es, _en in _WEEKDAYS:
    PAST_TIMES.append(TimeExpression(_zh, _es, _en, (0.5, 0.5)))
    FUTURE_TIMES.append(TimeExpression(_zh, _es, _en, (0.5, 0.5)))

# ------------------------------------------------------------- conversational extras

# Discourse fillers: zh, es, en, weight in the conversational domain ("" = none).
FILLERS: list[tuple[str, str, str, float]] = [
    ("", "", "", 6.0),
    ("嗯", "eh", "um", 2.0),
    ("那个", "pues", "well", 1.5),
    ("其实", "la verdad", "actually", 1.0),
    ("对了", "oye", "hey", 1.0),
    ("好吧", "bueno", "okay", 1.0),
    ("哎呀", "ay", "oh", 0.5),
    ("你知道吗", "sabes", "you know", 0.5),
]


@dataclass(frozen=True)
class Activity:
    """An intransitive activity: 游泳 / nadar / swim."""

    zh: str
    es_infinitive: str
    en_base: str
    en_3s: str
    weights: tuple[float, float]


_ACTIVITIES = """
游泳|nadar|swim|swims|1 2
开车|manejar|drive|drives|1 1
做饭|cocinar|cook|cooks|1 2
唱歌|cantar|sing|sings|0.5 2
跳舞|bailar|dance|dances|0.5 2
画画|dibujar|draw|draws|1 1
弹吉他|tocar la guitarra|play the guitar|plays the guitar|0.5 2
弹钢琴|tocar el piano|play the piano|plays the piano|1 1
说英语|hablar inglés|speak english|speaks english|1 1
说中文|hablar chino|speak chinese|speaks chinese|1 1
说法语|hablar francés|speak french|speaks french|0.5 1
滑雪|esquiar|ski|skis|0.5 1
下棋|jugar al ajedrez|play chess|plays chess|1 1
踢足球|jugar al fútbol|play soccer|plays soccer|1 2
打篮球|jugar al baloncesto|play basketball|plays basketball|0.5 1
打网球|jugar al tenis|play tennis|plays tennis|0.5 1
工作|trabajar|work|works|2 1
学习|estudiar|study|studies|2 1
跑步|correr|run|runs|1 1
"""
ACTIVITIES: list[Activity] = [
    Activity(zh, es, b, t, _weights(w)) for zh, es, b, t, w in _rows(_ACTIVITIES)
]

# --------------------------------------------------------------- read-domain extras

# Organisations: zh, es, en.
ORGANISATIONS: list[tuple[str, str, str]] = [
    ("公司", "la empresa", "the company"),
    ("政府", "el gobierno", "the government"),
    ("市政府", "el ayuntamiento", "the city council"),
    ("银行", "el banco", "the bank"),
    ("大学", "la universidad", "the university"),
    ("医院", "el hospital", "the hospital"),
    ("工厂", "la fábrica", "the factory"),
]

# What an organisation does: zh verb, es infinitive, en past, objects ("staff", noun
# categories, or "=" and the zh names of the nouns).
ORGANISATION_ACTIONS: list[tuple[str, str, str, str]] = [
    ("招聘", "contratar a", "hired", "staff"),
    ("购买", "comprar", "bought", "v a"),
    ("开设", "abrir", "opened", "=商店 餐厅 学校 医院 工厂 博物馆"),
    ("建造", "construir", "built", "b"),
    ("卖出", "vender", "sold", "v a home"),
    ("关闭", "cerrar", "closed", "=商店 餐厅 学校 医院 工厂 博物馆"),
]


def organisation_objects(spec: str) -> list[Noun]:
    """The nouns an organisation action takes (see :data:`ORGANISATION_ACTIONS`)."""
    if spec == "staff":
        return STAFF
    if spec.startswith("="):
        names = spec[1:].split()
        return [n for n in NOUNS if n.zh in names]
    return [n for n in NOUNS if n.categories & set(spec.split())]


# Statistics: zh, es noun phrase, Spanish plural?, en.
STATISTICS: list[tuple[str, str, bool, str]] = [
    ("房租", "los alquileres", True, "rents"),
    ("物价", "los precios", True, "prices"),
    ("销售额", "las ventas", True, "sales"),
    ("失业率", "el desempleo", False, "unemployment"),
    ("出口", "las exportaciones", True, "exports"),
    ("人口", "la población", False, "the population"),
    ("工资", "los salarios", True, "wages"),
    ("游客人数", "el turismo", False, "tourism"),
    ("交通事故", "los accidentes de tráfico", True, "traffic accidents"),
]

# Means of transport for travel: zh, es, en.
TRANSPORT: list[tuple[str, str, str]] = [
    ("火车", "tren", "train"),
    ("飞机", "avión", "plane"),
    ("公共汽车", "autobús", "bus"),
    ("船", "barco", "boat"),
    ("汽车", "coche", "car"),
]
