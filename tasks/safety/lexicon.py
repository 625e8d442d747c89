"""The text screen's data: child words per language, the nouns that decide context, and adult idioms.

Tables only; the rules that read them live in `text_screen.py`. Every entry is lower-case and
written without accents (the screen folds "niño" to "nino" and "Mädchen" to "madchen" before it
looks anything up), except Russian, which keeps its own letters (ё is read as е).
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# English child words: lemma -> surface forms. Whole tokens only ("kidding" is not "kid").
# Flag-worthy because each names a person under 16 (or, for "son"/"daughter", a child of someone).


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in set("aeiou"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


_ENGLISH_NOUNS = (
    "child kid kiddo kiddie kiddy boy girl baby toddler infant newborn neonate tot teen teenager tween "
    "preteen adolescent youngster juvenile minor pupil schoolboy schoolgirl schoolchild schoolkid "
    "kindergartener kindergartner preschooler gradeschooler son daughter grandson "
    "granddaughter grandchild grandkid stepson stepdaughter stepchild godchild godson goddaughter tomboy "
    "choirboy paperboy newsboy ballboy ballgirl bairn urchin babysitter youth tyke sprog niece nephew stepkid "
    "godkid grandbaby preadolescent prepubescent tweenager teenybopper juvie youngling rugrat nipper teenie "
    "grandniece grandnephew firstborn"
).split()
_IRREGULAR = {
    "child": ("children", "childs", "childrens", "childrenz"),
    "schoolchild": ("schoolchildren",),
    "grandchild": ("grandchildren",),
    "stepchild": ("stepchildren",),
    "godchild": ("godchildren",),
    "kiddie": ("kiddies",),
    "kid": ("kidz",),
    "youth": ("youths",),
}
ENGLISH_FORMS: dict[str, str] = {}
for _lemma in _ENGLISH_NOUNS:
    ENGLISH_FORMS[_lemma] = _lemma
    ENGLISH_FORMS[_plural(_lemma)] = _lemma
for _lemma, _forms in _IRREGULAR.items():
    for _form in _forms:
        ENGLISH_FORMS[_form] = _lemma
# Adjectives and other words that put a child in the picture.
ENGLISH_FORMS.update(
    {
        "teenage": "teenage",
        "teenaged": "teenage",
        "underage": "underage",
        "underaged": "underage",
        "kindergarten": "kindergarten",
        "preschool": "preschool",
        "prek": "preschool",
        "breastfeeding": "breastfeeding",
        "boi": "boy",  # slang
        "breastfed": "breastfeeding",
        "babysitting": "babysitter",
        "young": "young",
        "youngsters": "youngster",
        "pubescent": "preteen",
        "prepubescent": "preteen",
        "preadolescents": "preadolescent",
    }
)
# "schooler" alone is no child word ("Schooler" is a surname): only "grade/middle/high schooler" below.

# Child words found inside a token written together with others ("toddlerlife", "babygirls",
# "#kidsofinstagram"): the common ones only, as short rare ones ("son", "tot") start many other words.
JOINABLE = frozenset(
    "kid kids kiddo kiddos child children boy boys girl girls baby babies toddler toddlers infant infants newborn "
    "newborns teen teens teenager teenagers tween tweens preteen preteens schoolkid schoolkids".split()
)
# Short words that may be a piece of such a token: "boysandgirls", "kidsofinstagram", "mybaby".
JOIN_SHORT_WORDS = frozenset("of and in on at my to n".split())

# Misspellings are looked for only near these: the words people type for children. Rarer words of
# the lexicon (ballboy, godson, bairn, neonate, ...) have more real neighbours than typos
# ("badboy", "gorgons", "cairn", "neonazi").
FUZZY_TARGETS = frozenset(
    (
        "child children kids kiddo kiddos boys girl girls baby babies toddler toddlers infant infants teenager "
        "teenagers teenage teenaged adolescent adolescents youngster youngsters juvenile juveniles underage "
        "kindergarten kindergartner kindergartners kindergartener kindergarteners preschooler preschoolers "
        "schoolboy schoolboys schoolgirl schoolgirls schoolchildren daughter daughters granddaughter "
        "granddaughters grandchild grandchildren newborn newborns preteen preteens grandson grandsons minor minors "
        "stepdaughter stepdaughters stepson stepsons schoolkid schoolkids pupil pupils tots youth youths sons "
        "teens tween tweens niece nieces nephew nephews stepkids grandkids grandson"
    ).split()
)
# Short child words too short for an edit, caught when two adjacent letters are swapped ("kdi", "byo").
SHORT_SWAP_TARGETS = frozenset("kid kids boy boys".split())
# Frequent tokens (spaCy's lexeme probabilities above e^-18.5) that are not in the English vocabulary
# yet sit within the tolerated distance of a target: names, brands, slang and words of other
# languages. Listed once by `bench/screen_near_words.py` and checked by hand; real misspellings
# ("gurl", "babby", "childern", "daugther") are not here.
NOT_MISSPELLINGS = frozenset(
    (
        "sony sona tats gil infact childfree chilis babied barbies babys bons bois bodys boyo boyf boxs boyd "
        "grrl gira gir kis kies kins keds kims kias kida kiks kils tgirl batgirl starchild chillen "
        "chil coild infatti infinte infinty infante insats insanes tomos tweenage teenages teenagery "
        "undereye underware underlag underdoge underated underpayed toodles toodle todger kiddin kidder kiddish "
        "babs babi bady barby gorl giri adolescente adolescentes juvenil kuddos youngers schoolbus schooly "
        "trenger boks badies intanto totaler tunage toggler teensie boes tidder tiddle girlf infarto bols taddle "
        "childe childress boyds bors boby sont sono tous simpsons stepmom stepmoms tos tenes "
        "protien protiens stesso toti tuts sonst totw sois toty tweek tweeks steppin pretende pretenden "
        "pretendes tts tiens txts thts grandmom septon septons sonys sns soms newtown mino minons teets newports "
        "sonos grayson teefs prieten pregen pregens schoolin schoolies sors newyork sonas soos praten pretest "
        "kidult kidults babybel infanta infantas tods "
        "stinson minon minox stepdown soins toos thots sions preceeds preceed preseed pretent thens minore tota "
        "minori pressen sojs grandpop socs tweeny newbury sterons stepan sampson granderson tets toats sones minar "
        "stephens grandsoil teeps sond totse seson tfts scons pieten youts prietene protegen sovs prete youch toth "
        "theen minot proteans prefeer preven soes soni sonds newbro newbros grandios teers miror stephan undersøge "
        "precooler childed boyos bouys souns"
    ).split()
)
# Multi-word child terms (matched on the normalised tokens).
CHILD_PHRASES: dict[tuple[str, ...], str] = {
    tuple(phrase.split()): term
    for term, phrases in {
        "little league": ("little league",),
        "little one": ("little one", "little ones", "lil one", "lil ones"),
        "elementary school": ("elementary school", "elementary schooler", "elementary schoolers"),
        "grade school": ("grade school", "grade schooler", "grade schoolers"),
        "primary school": ("primary school",),
        "middle school": ("middle school", "middle schooler", "middle schoolers", "junior high"),
        "high school": ("high school", "high schooler", "high schoolers"),
        "cub scout": ("cub scout", "cub scouts", "brownie scout"),
        "preschool": ("pre k",),
        "underage": ("under age",),
        # "new born", and Spanish and Portuguese "newborn", two words.
        "newborn": ("new born", "recien nacido", "recien nacidos", "recien nacida", "recem nascido", "recem nascidos"),
        "preteen": ("pre teen", "pre teens"),
        "young ones": ("young ones", "young one", "young uns"),
        # A sibling said to be little is a child: "my little sister", "kid brother".
        "little sibling": (
            "little sister",
            "little sisters",
            "little brother",
            "little brothers",
            "kid sister",
            "kid brother",
            "baby sister",
            "baby brother",
            "lil sis",
            "lil bro",
            "little sis",
            "little bro",
            "baby sis",
            "baby bro",
        ),
        # Lads and lasses said to be little are boys and girls.
        "little lad": ("little lad", "little lads", "little lass", "little lasses", "wee lad", "wee lads", "wee lass"),
        "nursery school": ("nursery school", "nursery class", "play school", "playschool"),
        "school age": ("school age", "school aged"),
    }.items()
    for phrase in phrases
}
# "my little cousin", "kid brother", "wee sis": a relative said to be little is a child.
LITTLE_WORDS = frozenset("little lil wee tiny kid baby".split())
KIN_NOUNS = frozenset("sister sisters brother brothers sis bro cousin cousins sibling siblings".split())
# "<ordinal> grader": first to tenth grade is under 16.
GRADE_NUMBERS = frozenset("1 2 3 4 5 6 7 8 9 10 one two three four five six seven eight nine ten".split())
SCHOOL_WORDS = frozenset(
    "class classes classroom classrooms students student pupils pupil teacher teachers kids children "
    "homework math maths reading science field trip leavers assembly pupil nativity sats trip playground "
    "playtime".split()
)
GRADE_ORDINALS = frozenset(
    "first second third fourth fifth sixth seventh eighth ninth tenth 1st 2nd 3rd 4th 5th 6th 7th 8th 9th 10th".split()
)

# ---------------------------------------------------------------------------------------------
# Other languages. Each list is stemmed with nltk's Snowball stemmer for that language; a token
# matches when its stem is one of these stems and it is not itself an English word.

FOREIGN_WORDS: dict[str, list[str]] = {
    "spanish": (
        "nino ninos nina ninas ninito ninita ninitos nene nenes nena nenas chico chicos chica chicas chiquillo "
        "chiquilla chiquillos bebe bebes infante infantes muchacho muchachos muchacha muchachas chaval chavales "
        "chavala crio crios cria chamaco chamacos adolescente adolescentes menor menores hijo hijos hija hijas "
        "nieto nietos nieta nietas colegial colegiales colegiala colegialas escolar escolares alumno alumnos "
        "alumna alumnas pequeno pequenos pequena pequenas guagua chamaca chiquito chiquita chiquitos chiquitas "
        "chiquitin bebito bebita jovencito jovencita jovencitos jovencitas "
        "escuincle escuincles peque peques"
    ).split(),
    "portuguese": (
        "crianca criancas menino meninos menina meninas garoto garotos garota garotas bebe bebes miudo miudos "
        "miuda miudas guri guris guria gurias filho filhos filha filhas neto netos neta netas adolescente "
        "adolescentes colegial colegiais aluno alunos aluna alunas rapazinho moleque moleques infantil "
        "pequenino pequenina molecada criancada petiz petizes nenem nenens pirralho pirralhos pirralha"
    ).split(),
    "german": (
        "kinder kindern kindes kleinkind kleinkinder madchen maedchen madel maedel junge jungen jungs knabe "
        "knaben bub buben bube baby babys saugling sauglinge saeugling teenager jugendliche jugendlicher "
        "jugendlichen schuler schulerin schulerinnen schueler schuelerin sohn sohne soehne tochter tochtern "
        "toechter enkel enkelin enkelkind enkelkinder minderjahrig minderjahrige minderjaehrige "
        "grundschuler grundschueler knirps knirpse bengel sprossling"
    ).split(),
    "french": (
        "enfant enfants bebe bebes garcon garcons fille filles fillette fillettes gamin gamins "
        "bambin bambins nourrisson nourrissons ecolier ecoliers ecoliere ecolieres adolescent adolescente "
        "adolescents adolescentes mineur mineurs mineure mineures gosse gosses petiot fiston collegien "
        "collegienne collegiens collegiennes poupon poupons mome momes"
    ).split(),
    "italian": (
        "bambino bambini bambina bambine bimbi bimba bimbe ragazzo ragazzi ragazza ragazze ragazzino ragazzini "
        "ragazzina ragazzine neonato neonati neonata neonate figlio figli figlia figlie nipotino nipotina "
        "scolaro scolari scolara scolare adolescente adolescenti minorenne minorenni fanciullo fanciulli "
        "fanciulla fanciulle pargolo pargoli bimbetto bimbetti frugoletto marmocchio marmocchi piccolino "
        "piccolina piccolini piccoline"
    ).split(),
    "russian": (
        "ребенок ребенка ребенку ребенком ребенке дети детей детям детьми детях дитя малыш малыша малыши "
        "малышей малышка малышки младенец младенца младенцы младенцев мальчик мальчика мальчики мальчиков "
        "мальчишка мальчишки девочка девочки девочку девочек девчонка девчонки подросток подростка подростки "
        "подростков школьник школьника школьники школьников школьница школьницы сын сына сыновья сыновей "
        "дочь дочери дочка дочки внук внука внуки внучка внучки несовершеннолетний несовершеннолетняя "
        "несовершеннолетние малолетний малолетняя малолетние дошкольник дошкольники детвора карапуз пацан "
        "пацаны школота ребятишки ребятня детишки сынишка сыночек доченька девчушка девчонка мальчуган внучок "
        "малолетка малолетки "
        "новорожденный новорожденная новорожденные первоклассник первоклассница первоклассники первоклашка "
        "второклассник третьеклассник младшеклассник"
    ).split(),
}
# Prefixes that make a compound about children: German "Kinderspielplatz", "Kindesalter",
# "Mädchenschule"; Russian "детский", "детсад". Suffixes likewise: "Schulkind", "Schulmädchen".
COMPOUND_PREFIXES: dict[str, tuple[str, ...]] = {
    "german": ("kinder", "kindes", "madchen", "maedchen", "jungen", "sauglings", "schuler", "schueler"),
    "russian": (
        "детск",
        "детсад",
        "детишк",
        "детвор",
        "детк",
        "малыш",
        "младен",
        "школьн",
        "девочк",
        "мальчиш",
        "подростк",
    ),
}
COMPOUND_SUFFIXES: dict[str, tuple[str, ...]] = {
    "german": ("kind", "kinder", "kindern", "madchen", "maedchen", "junge", "jungen"),
}
# Letters a compound needs besides the child part: German compounds join whole words; a Russian
# adjective only adds its ending ("детская").
COMPOUND_MIN_REST: dict[str, int] = {"german": 3, "russian": 0}
# In these languages a token that starts with a child word's stem of 5 letters or more is a derived
# form of it (diminutives: "garotinho", "criancinha", "bambinello", "мальчишка"); German builds
# compounds instead (above), where a stem prefix would also catch "Schulter" from "Schule".
DERIVED_FORM_LANGUAGES = frozenset({"spanish", "portuguese", "italian", "french", "russian"})
MIN_DERIVED_STEM = 5
# Diminutive endings per language, longest first, and the endings the base may have had: "hijita" is
# "hij" + "a", "bebezinho" "bebe", "figlioletto" "figli" + "o", "Töchterchen" "tochter", "сынишка" "сын",
# "доченька" "доч" + "ь", "мальчуган" "мальч" + "ик". A Spanish base ending in "qu" or "gu" had "c" or "g"
# ("chiquitas" -> "chica").
DIMINUTIVES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "spanish": (
        tuple(
            "ecitos ecitas ecito ecita citos citas cito cita itines itin itos itas ito ita illos illas illo illa "
            "ines inas in ina".split()
        ),
        ("", "o", "a", "e", "os", "as"),
    ),
    "portuguese": (
        tuple("zinhos zinhas zinho zinha inhos inhas inho inha itos itas ito ita".split()),
        ("", "o", "a", "e", "os", "as"),
    ),
    "italian": (
        tuple(
            "oletto oletta oletti olette olino olina olini ucci uccio uccia etto etta etti ette ello ella elli elle "
            "ino ina ini ine".split()
        ),
        ("", "o", "a", "i", "e"),
    ),
    "french": (tuple("ettes ette ets et".split()), ("", "e")),
    "german": (tuple("chens chen leins lein".split()), ("", "e")),
    "russian": (
        tuple(
            "ишками ишкой ишка ишки ишку еньками енькой енька еньки еньку онька оньки ушка ушки ушку уганы уган "
            "урка урки урку ата "
            "очек очки ята енок ик ики ок".split()
        ),
        ("", "ь", "ик", "ка", "а", "онка"),
    ),
}
MIN_DIMINUTIVE_BASE = 3
# Letters an inflection adds to a stem, at most: "Mädchens" is "Mädchen", "Madchester" is not.
MAX_ENDING = 4
# Words of another language that share a child word's stem but are no child: a princess ("infanta").
FOREIGN_NOT_CHILD = frozenset("infanta infantas".split())
# Russian written in Latin letters: each Cyrillic letter's common spellings, the first the usual one.
RUSSIAN_LATIN: dict[str, tuple[str, ...]] = {
    "а": ("a",), "б": ("b",), "в": ("v",), "г": ("g",), "д": ("d",), "е": ("e", "ye", "ie"), "ж": ("zh",), "з": ("z",),
    "и": ("i",), "й": ("y", "i", "j"), "к": ("k",), "л": ("l",), "м": ("m",), "н": ("n",), "о": ("o",), "п": ("p",),
    "р": ("r",), "с": ("s",), "т": ("t",), "у": ("u",), "ф": ("f",), "х": ("kh", "h"), "ц": ("ts", "c"),
    "ч": ("ch",), "ш": ("sh",), "щ": ("shch", "sch"), "ъ": ("",), "ы": ("y", "i"), "ь": ("", "i"), "э": ("e",),
    "ю": ("yu", "iu", "ju"), "я": ("ya", "ia", "ja"),
}  # fmt: skip
MIN_LATIN_STEM = 4
# Stems that begin other words too: French "nourriture" (food), "E. coli", "infanterie", "menorah".
NOT_DERIVED_STEMS = frozenset({"nourr", "ecoli", "fillet", "infant", "menor"})
# Words that are also everyday English words; they count only when the text has other words of
# their language ("ein Kind", "un ado") — see LANGUAGE_MARKERS.
NEEDS_LANGUAGE_CONTEXT: dict[str, str] = {
    "kind": "german",
    "kinds": "german",
    "ado": "french",
    "ados": "french",
    "bimbo": "italian",
    "bimbos": "italian",
    "pequeno": "spanish",
    "pequena": "spanish",
    "alumno": "spanish",
    "alumna": "spanish",
    "escolar": "spanish",
    "infantil": "portuguese",
    "cria": "spanish",
    "pequenos": "spanish",
    "alumnas": "spanish",
    "escolares": "spanish",
}
# English child words that are everyday words of another language: French/Spanish "son" (his/her;
# are), German "tot" (dead). They do not count in a text of that language with no English in it.
FALSE_FRIENDS: dict[str, tuple[str, ...]] = {"son": ("french", "spanish"), "tot": ("german",)}
ENGLISH_MARKERS = frozenset(
    "the a an and with of in on at his her my our their is are to for from by this that".split()
)
LANGUAGE_MARKERS: dict[str, frozenset[str]] = {
    "german": frozenset(
        "ein eine einem einen einer das der die den dem des und mit im am auf spielt spielen kleines kleine "
        "kleiner mein meine unser unsere ist sind beim zum zur vom fur fuer nicht".split()
    ),
    "french": frozenset("un une des les le la du au aux avec et est sont mon ma mes petit petite joue jouent".split()),
    "italian": frozenset("un una il lo gli le della del con e sono piccolo piccola gioca giocano mio mia".split()),
    "spanish": frozenset("un una el los las del con y es son mi mis juega juegan en de".split()),
    "portuguese": frozenset("um uma o os as do da dos das com e sao meu minha brinca brincam no na".split()),
}

# ---------------------------------------------------------------------------------------------
# Nouns that decide what "young", "baby", "newborn", "juvenile", "minor" and an age refer to.

ADULT_NOUNS = frozenset(
    (
        "man men woman women lady ladies adult adults gentleman gentlemen guy guys bride brides groom grooms "
        "mother mothers father fathers mom moms dad dads mum mums wife wives husband husbands couple couples "
        "professional professionals parent parents parents' executive executives entrepreneur entrepreneurs "
        "businessman businesswoman businessmen businesswomen lawyer lawyers doctor doctors nurse nurses "
        "soldier soldiers officer officers graduate graduates mom's widow widower grandmother grandfather "
        "grandma grandpa granny senior seniors retiree retirees pastor pastors minister ministers leader leaders "
        "coordinator coordinators counselor counselors counsellor chaplain bachelor bachelors fiance fiancee newlyweds "
        "lovers voters worker workers employee employees farmer farmers priest monk monks nun nuns "
        "frau frauen mann manner maenner leute erwachsene paar ehepaar dame damen"
    ).split()
)
ANIMAL_NOUNS = frozenset(
    (
        "animal animals dog dogs puppy puppies pup pups cat cats kitten kittens kitty horse horses foal foals colt "
        "colts filly fillies pony ponies calf calves cow cows bull bulls ox heifer lamb lambs sheep ewe ram goat "
        "goats kid's deer fawn fawns doe elk moose bird birds chick chicks chicken chickens hen hens rooster "
        "duck ducks duckling ducklings goose geese gosling goslings swan swans cygnet cygnets owl owls owlet eagle "
        "eagles eaglet hawk hawks falcon heron herons robin robins sparrow sparrows pigeon pigeons gull gulls "
        "penguin penguins parrot parrots fish salmon trout shark sharks whale whales dolphin dolphins seal seals "
        "otter otters bear bears cub cubs lion lions lioness tiger tigers leopard cheetah wolf wolves fox foxes "
        "rabbit rabbits bunny bunnies hare squirrel squirrels mouse mice rat rats hamster hamsters guinea pig pigs "
        "piglet piglets hog boar elephant elephants giraffe giraffes zebra zebras hippo rhino monkey monkeys ape "
        "apes gorilla gorillas chimp chimpanzee orangutan orangutans panda pandas koala koalas kangaroo joey "
        "camel camels llama llamas alpaca alpacas donkey donkeys mule turtle turtles tortoise snake snakes lizard "
        "lizards iguana frog frogs toad tadpole tadpoles crocodile alligator octopus squid crab crabs lobster "
        "butterfly caterpillar bee bees ant ants spider beetle raccoon skunk badger hedgehog beaver bat bats "
        "turkey turkeys peacock flamingo flamingos pelican stork crow raven magpie finch bluebird cardinal "
        "labrador retriever retrievers poodle beagle terrier terriers collie husky huskies bulldog spaniel "
        "shepherd dachshund chihuahua pug corgi rottweiler doberman greyhound mastiff setter pointer schnauzer "
        "thoroughbred stallion mare mares gelding steer stallions livestock cattle poultry wildlife fledgling "
        "fledglings nestling nestlings hatchling hatchlings yearling yearlings sloth sloths lemur lemurs "
        "meerkat meerkats hyena hyenas jaguar jaguars panther panthers lynx bobcat cougar puma ocelot "
        "wildcat wildcats mongoose weasel ferret ferrets mink stoat marten wolverine porcupine armadillo "
        "anteater opossum possum wombat platypus wallaby wallabies bison buffalo buffaloes yak yaks ibex "
        "antelope antelopes gazelle gazelles impala wildebeest reindeer caribou walrus walruses manatee "
        "dugong narwhal orca orcas porpoise porpoises seahorse seahorses starfish jellyfish stingray eel eels "
        "tuna cod carp koi goldfish clownfish pike bass catfish minnow guppy tadpoles newt salamander "
        "gecko geckos chameleon python cobra viper rattlesnake boa turtle hatchlings terrapin ostrich emu "
        "kiwi puffin puffins albatross kingfisher woodpecker hummingbird hummingbirds swallow swift "
        "starling starlings wren blackbird thrush jay bluejay canary budgie budgies cockatoo macaw "
        "parakeet vulture vultures condor kestrel osprey buzzard egret egrets crane cranes ibis goose "
        "mallard teal grebe loon coot moorhen pheasant quail partridge grouse ptarmigan dove doves "
        "gorillas chimps chimpanzees baboon baboons macaque macaques gibbon gibbons marmoset "
        "capybara chinchilla gerbil gerbils hamster guinea lamb calves heifers "
        "labradors retrievers spaniels poodles beagles pugs corgis dalmatian dalmatians husky malamute akita "
        "shiba sheepdog sheepdogs schnauzers kitties axolotl quokka pangolin tapir okapi aardvark warthog hyrax "
        "beluga tarsier loris kinkajou coati binturong fennec jackal dingo coyote chamois markhor muskox gnu "
        "kudu oryx springbok vicuna guanaco hippopotamus rhinoceros cassowary kookaburra lorikeet cockatiel "
        "toucan hornbill cormorant gannet tern plover sandpiper killdeer bobwhite nuthatch chickadee titmouse "
        "warbler oriole tanager grosbeak bunting nightjar hoopoe mockingbird catbird sparrowhawk goshawk "
        "harrier peregrine seagull seagulls grizzly polar elk moose marmot groundhog chipmunk vole shrew mole "
        "dormouse lamprey barracuda grouper halibut flounder sardine anchovy mackerel herring tilapia perch "
        "sturgeon axolotls bear's hen's sow sows boars bullock bullocks ewe's ewes rams nanny billy kitten's "
        "stag stags hind hinds roe buck bucks bonobo bonobos dodo dragonfly dragonflies echidna echidnas "
        "grasshopper hornet hornets ladybird ladybirds ladybug ladybugs larva larvae leveret leverets mandrill moth "
        "moths mouflon muntjac nightingale puffling pufflings scorpion shrimp slug slugs snail snails spiderling "
        "tarantula wasp wasps worm worms insect insects reptile reptiles mammal mammals primate primates "
        "mustang bronco donkey's mule's burro zebu dromedary alpacas llama's ox oxen bison's hedgehogs"
    ).split()
)
# Things that an age or "young"/"baby" can describe without a child in sight.
THING_NOUNS = frozenset(
    (
        "bread loaf loaves baguette cheese cheddar parmesan gouda brie wine wines whisky whiskey whiskies scotch "
        "bourbon rum cognac brandy port sherry beer ale tequila mezcal vodka gin sake meat beef steak steaks "
        "ham salami prosciutto leftovers leftover pizza milk eggs egg cake sushi coffee sourdough starter "
        "car cars truck trucks bike bikes bicycle motorcycle boat boats van suv sedan jeep tractor bus plane "
        "house home building church barn tree trees oak oaks plant plants vine vines vineyard forest woods "
        "laptop phone iphone computer pc tablet tv television camera shoes sneakers boots jacket couch sofa "
        "mattress tires tyres battery photo photos picture pictures painting newspaper magazine blog website "
        "company startup business brand tradition festival meme video game account software code mortgage "
        "roof kitchen bathroom carpet fence deck guitar piano violin watch clock bottle barrel cask casks "
        "beard stubble tattoo scar bruise wound injury cut snow ice flowers bouquet salad soup stew sandwich "
        "donut donuts bagel bagels muffin muffins cookie cookies pastry croissant rice pasta fruit banana "
        "bananas apple apples avocado shirt jeans dress sweater mobile smartphone printer router engine "
        "grapes moon sun star stars universe galaxy planet sprout sprouts shoot shoots seedling seedlings "
        "leaf leaves grass crop crops corn carrot carrots spinach potato potatoes tomatoes lettuce kale "
        "arugula greens onion onions garlic peas beans zucchini cucumber cucumbers pumpkin squash mushrooms "
        "mushroom ribs chard bok choy asparagus artichokes octopus computer trailer sweater heater printer "
        "scooter tractor monitor poster speaker container freezer cooler blender dryer boiler mower motor "
        "generator radiator refrigerator fridge washer trimmer grinder mixer cooker toaster charger adapter "
        "amplifier controller recorder burger butter cider lager liqueur water flour paper timber leather rubber "
        "copper silver ginger oyster oysters lobster cellar liquor vinegar diaper diapers locker dresser drawer "
        "mirror chandelier calendar folder binder sticker stickers letter letters number meter odometer harbor "
        "tower manor floor door doors collar helmet single malt vintage wood "
        "furniture rug quilt chair chairs table tables desk bed beds carpets shed macallan glenlivet glenfiddich "
        "laphroaig lagavulin talisker ardbeg jameson bushmills highland speyside islay honda toyota ford bmw audi "
        "volvo subaru tesla mercedes volkswagen vw nissan mazda chevy chevrolet porsche ferrari corolla civic "
        "macbook ipad thinkpad dell lenovo samsung pixel playstation xbox nintendo kindle roomba"
    ).split()
)
# Nouns that make an age or "young" about a person who may be a child.
PERSON_NOUNS = frozenset(
    (
        "person people human individual twin twins triplets sibling siblings brother brothers sister sisters "
        "cousin cousins niece nieces nephew nephews friend friends classmate classmates student students "
        "player players athlete athletes gymnast gymnasts dancer dancers ballerina ballerinas swimmer swimmers "
        "skater skaters skier skiers snowboarder snowboarders surfer surfers runner runners cyclist cyclists "
        "rider riders jockey footballer footballers golfer golfers boxer boxers wrestler wrestlers climber "
        "climbers diver divers skateboarder skateboarders pianist pianists violinist violinists drummer "
        "drummers guitarist guitarists singer singers musician musicians artist artists painter model models "
        "actor actors actress actresses star stars prodigy prodigies genius champion champions winner "
        "contestant contestants learner learners reader readers camper campers scout scouts patient patients "
        "orphan orphans refugee refugees blonde blond brunette redhead fan fans team squad chess asian african "
        "latino latina hispanic caucasian muslim christian jewish indian chinese japanese korean "
        "native princess prince mascot"
    ).split()
)

# ---------------------------------------------------------------------------------------------
# After an age, these make it about a person too: "a 5 year old birthday party".
PERSON_CONTEXT = frozenset(
    "birthday party class classes classroom camp recital portrait haircut bedroom costume outfit photoshoot "
    "graduation lesson lessons daycare preschool kindergarten".split()
)

# Endings of nouns for someone who does something; after an age they make it a person's age.
AGENT_SUFFIXES = ("er", "ers", "or", "ors", "ist", "ists", "ian", "ians", "eur", "eurs", "guard", "guards", "ess")

# ---------------------------------------------------------------------------------------------
# Adult idioms: token sequences in which a child word does not mean a child. "*" is any one token.
# A child word covered by one of these spans is excused; any other child word still flags.

IDIOMS: dict[str, tuple[str, ...]] = {
    "young animal": (
        "goat kid",
        "goat kids",
        "goats kids",
        "kid goat",
        "kid goats",
        "nanny goat",
        "kid leather",
        "kid gloves",
        "kid glove",
        "kid skin",
        "kidskin",
        "kid suede",
        "kid mohair",
        "doe and her kid",
        "doe and kid",
        "doe with kid",
        "goat with her kid",
        "goat with her kids",
        "goat and her kids",
        "goat and her kid",
        "tater tot",
        "tater tots",
        "nene goose",
        "nene geese",
        "sea urchin",
        "nail nippers",
        "cuticle nippers",
        "wire nippers",
        "nail nipper",
        "fur baby",
        "fur babies",
        "fur kid",
        "fur kids",
        "furbaby",
        "furbabies",
        "sea urchins",
    ),
    "product": (
        "child seat",
        "child seats",
        "child car seat",
        "child lock",
        "child locks",
        "child safety lock",
        "child safety locks",
        "child safety cap",
        "child proof",
        "boys room",
        "girls room",
        "boys' room",
        "girls' room",
        "child proofing",
        "childproofing",
        "baby proof",
        "baby proofing",
        "babyproof",
        "babyproofing",
        "toddler proof",
        "toddler proofing",
        "kid proofing",
        "child free",
        "kid free",
        "kids free",
        "child resistant",
        "child friendly",
        "kid friendly",
        "kids friendly",
        "child support",
        "child size",
        "kid proof",
        "baby grand",
        "baby grands",
        "baby blue",
        "baby pink",
        "baby carrots",
        "baby carrot",
        "baby spinach",
        "baby potatoes",
        "baby corn",
        "baby back ribs",
        "baby bella",
        "baby bellas",
        "baby kale",
        "baby arugula",
        "baby tomatoes",
        "baby leaf",
        "baby greens",
        "baby octopus",
        "baby shower",
        "baby showers",
        "baby bump",
        "baby boomer",
        "baby boomers",
        "baby boom",
        "baby face",
        "baby faced",
        "baby oil",
        "baby powder",
        "baby monitor",
        "baby gate",
        "baby food",
        "baby wipes",
        "baby steps",
        "baby's breath",
        "babys breath",
        "baby hair",
        "baby hairs",
        "baby doll dress",
        "babydoll dress",
        "baby bok choy",
        "baby shark",
        "sugar baby",
        "baby yoda",
        "baby driver",
        "baby squid",
        "baby clam",
        "baby clams",
        "baby zucchini",
        "baby bottle",
        "baby bottles",
        "baby swing",
        "baby swings",
        "baby carrier",
        "baby carriers",
        "baby stroller",
        "baby strollers",
        "baby crib",
        "baby cribs",
        "baby clothes",
        "baby shoes",
        "baby formula",
        "baby lotion",
        "baby shampoo",
        "baby blanket",
        "baby blankets",
        "baby bib",
        "baby bibs",
        "baby toys",
        "baby products",
        "baby registry",
        "baby bouncer",
        "baby walker",
        "baby bath tub",
        "baby car seat",
        "baby mobile",
        "baby rattle",
        "baby onesie",
        "baby socks",
        "baby booties",
        "baby gear",
        "child safety",
        "child bike seat",
        "child carrier",
        "girl scout cookies",
        "girl scout cookie",
        "kinder surprise",
        "kinder egg",
        "kinder joy",
        "baby moon",
        "babymoon",
        "kinder eggs",
        "kinder bueno",
        "kinder chocolate",
        "kiddie ride",
        "infant formula",
        "daughter board",
        "daughterboard",
        "tomboy style",
        "tomboy fashion",
        "tomboy look",
        "tomboy chic",
        "tomboy outfit",
        "youth hostel",
        "youth hostels",
        "fountain of youth",
        "eternal youth",
        "youth culture",
        "minor league",
        "minor leagues",
        "minor leaguer",
        "minor league baseball",
        "son in law",
        "sons in law",
        "daughter in law",
        "daughters in law",
        "enfant terrible",
        "el nino storm",
        "el nino storms",
        "el nino weather",
        "el nino effect",
        "el nino year",
        "el nino winter",
        "el nino waves",
        "el nino rains",
        "el nino pattern",
        "el nino event",
        "el nino map",
        "el nino flooding",
        "la nina weather",
        "la nina map",
        "la nina winter",
        "la nina year",
        "la nina effect",
        "la nina pattern",
        "la nina event",
        "teen spirit",
        "young at heart",
        "forever young",
        "young wine",
        "young blood",
        "youngblood",
        "yummy mummy",
    ),
    # People called boys, girls or babies: excused only when nothing else in the text makes them
    # children (`CHILD_SCENE_WORDS`, a size or count word before them).
    "people": (
        "child's play",
        "childs play",
        "inner child",
        "poster child",
        "poster boy",
        "poster girl",
        "whipping boy",
        "golden boy",
        "boy band",
        "boy bands",
        "girl group",
        "girl groups",
        "girl power",
        "girl boss",
        "girlboss",
        "it girl",
        "cover girl",
        "bond girl",
        "bond girls",
        "pin up girl",
        "pinup girl",
        "call girl",
        "party girl",
        "working girl",
        "material girl",
        "gibson girl",
        "girl friday",
        "oh boy",
        "old boys",
        "old boy",
        "good old boys",
        "old boys network",
        "boys in blue",
        "boy toy",
        "bad boy",
        "pretty boy",
        "mama's boy",
        "mommas boy",
        "big boy pants",
        "son of a gun",
        "and sons",
        "and son",
        "and daughters",
        "& sons",
        "kid you not",
        "tot of rum",
        "tot of whisky",
        "tot of whiskey",
        "tot of brandy",
        "tot of gin",
        "tot of sherry",
        "kid me not",
        "new kid on the block",
        "new kid in town",
        "kid in a candy store",
        "girl next door",
        "daddy's girl",
        "daddys girl",
        "the old girl",
        "boy oh boy",
        "big baby",
        "cry baby",
        "crybaby",
        "hey baby",
        "man child",
        "manchild",
        "young looking",
        "baby face",
        "golden child",
        "problem child",
        "wild child",
        "wonder boy",
        "boy wonder",
        "dream girl",
        "girl crush",
        "boys will be boys",
        "young guns",
        "kid at heart",
        "kids at heart",
        "big kid at heart",
        "teenage years",
        "teen years",
        "pupil of the eye",
        "pupils of the eyes",
        "pupil of an eye",
        "girl's best friend",
        "girls best friend",
        "toy boy",
        "toyboy",
        "baby mama",
        "baby daddy",
        "big boi",
        "high school reunion",
        "school reunion",
        "class reunion",
        "old girls",
        "the girls' night",
    ),
    # "birthday boy": a child unless the text gives an adult age ("the birthday boy turning 50").
    "needs adult age": (
        "birthday boy",
        "birthday girl",
        "baby of the",
        "the baby of the",
    ),
    "adult friends": (
        "boys * weekend",
        "girls * weekend",
        "boys * trip",
        "girls * trip",
        "boys * night",
        "girls * night",
        "girls night in",
        "night with the girls",
        "night with the boys",
        "weekend with the girls",
        "weekend with the boys",
        "trip with the girls",
        "trip with the boys",
        "jungs abend",
        "jungsabend",
        "madels abend",
        "madelsabend",
        "madelstrip",
        "girls' getaway",
        "girls * getaway",
        "girls night",
        "girls nights",
        "girls night out",
        "girl's night",
        "girls trip",
        "girls weekend",
        "girls getaway",
        "girls day out",
        "girls brunch",
        "girls lunch",
        "girls dinner",
        "girls gang",
        "girls squad",
        "girls' night",
        "boys night",
        "boys night out",
        "boys trip",
        "boys weekend",
        "night out with the boys",
        "out with the boys",
        "out with the girls",
        "one of the boys",
        "one of the girls",
        "the boys at the pub",
        "the boys at the bar",
        "with the boys at",
        "lads and boys",
        "stag do",
        "hen do",
        "hen party",
        "bachelorette",
        "bachelor party",
    ),
    "name": (
        "beastie boys",
        "backstreet boys",
        "beach boys",
        "pet shop boys",
        "jersey boys",
        "boyz ii men",
        "boys ii men",
        "boyz 2 men",
        "boy george",
        "boys like girls",
        "spice girls",
        "golden girls",
        "gossip girl",
        "girls aloud",
        "powerpuff girls",
        "girl with a pearl earring",
        "destiny's child",
        "destinys child",
        "julia child",
        "lee child",
        "sweet child o mine",
        "sweet child of mine",
        "neil young",
        "angus young",
        "malcolm young",
        "will young",
        "paul young",
        "brigham young",
        "cy young",
        "steve young",
        "sean young",
        "loretta young",
        "young thug",
        "young jeezy",
        "young mc",
        "young the giant",
        "kid rock",
        "kid cudi",
        "billy the kid",
        "kid creole",
        "kid laroi",
        "the kid laroi",
        "karate kid",
        "kid a",
        "new kids on the block",
        "jason kidd",
        "captain kidd",
        "jodie kidd",
        "nicole kidman",
        "sonic youth",
        "mumford and sons",
        "mumford sons",
        "sons of anarchy",
        "son of a preacher man",
        "son house",
        "son heung min",
        "teenage mutant ninja turtles",
        "teenage mutant",
        "ninja turtles",
        "teen titans",
        "teen wolf",
        "teenage fanclub",
        "teen vogue",
        "babyface",
        "baby spice",
        "baby ruth",
        "nina simone",
        "nina hagen",
        "nina dobrev",
        "babe ruth",
        "kids see ghosts",
        "boyzone",
        "girls generation",
        "the boys in the band",
        "bay city rollers",
        "coal miner's daughter",
        "coal miners daughter",
        "daughters of the american revolution",
        "the kid stays in the picture",
        "el chico",
        "chico marx",
        "la chica",
        "kinder morgan",
        "ursa minor",
        "asia minor",
        "minor threat",
        "young and the restless",
        "young and restless",
        "young sheldon",
        "young frankenstein",
        "young adult fiction",
    ),
}
# Idiom families whose excuse needs a text with nothing else about children in it.
CONTEXT_SENSITIVE_IDIOMS = frozenset({"people", "adult friends", "name", "title"})
# Words that put children in the scene: childhood places, toys and pastimes, baby gear, and parents.
# "two little boys in blue on the seesaw" is about children, "boys in blue directing traffic" is not.
CHILD_SCENE_WORDS = frozenset(
    (
        "playground playgrounds nursery sandbox sandpit seesaw swingset crib cribs cot cots stroller strollers pram "
        "prams pushchair highchair daycare kindergarten preschool school schoolyard classroom recess playtime teddy "
        "teddies toy toys doll dolls lego crayon crayons lunchbox sleepover hopscotch piggyback bedtime nightlight "
        "sandcastle sandcastles pacifier nappy nappies diaper diapers onesie bib lullaby babysitter playdate "
        "playgroup trick treating rattle dummy tricycle trike buckets spades bouncy bunkbed storybook "
        "mum mom mummy mommy mama momma dad daddy papa father mother parent parents grandma grandpa granny nana "
        "grandparents grandmother grandfather stepmom stepdad creche creches mums moms mummies mommies dads "
        "daddies fathers mothers grandmas grandpas grannies nanas grandmothers grandfathers"
    ).split()
)
PARENT_WORDS = frozenset(
    "mum mom mummy mommy mama momma dad daddy papa father mother parent parents grandma grandpa granny nana "
    "grandparents grandmother grandfather stepmom stepdad mums moms mummies mommies dads daddies fathers mothers "
    "grandmas grandpas grannies nanas grandmothers grandfathers".split()
)
CHILD_PLACES_AND_THINGS = CHILD_SCENE_WORDS - PARENT_WORDS
# Size and count words right before a child word make it a child ("two small boys in blue").
CHILD_SIZE_WORDS = frozenset(
    "little small tiny wee young two three four five six several twin twins smaller littlest lil".split()
)
# Settings for adults only: "the girls at the office party", "a bachelorette with her girls".
ADULT_SETTING_WORDS = frozenset(
    (
        "office pub pubs nightclub nightclubs cocktail cocktails wine wines beer beers champagne prosecco "
        "bachelorette hen stag casino poker karaoke brewery whisky vodka margarita margaritas firehouse barracks "
        "coworkers colleagues firm company workplace job agency startup boardroom oficina despedida soltera "
        "soltero kneipe buro junggesellenabschied junggesellinnenabschied bureau ufficio nubilato celibato "
        "escritorio empresa cerveza cervezas bier wein vino"
    ).split()
)
# Words for friends, in English and the other languages, that are grown-ups in an adult setting.
FRIENDS_WORDS = frozenset(
    "boys girls lads chicos chicas jungs madels ragazzi ragazze garcons filles meninos meninas rapazes "
    "raparigas".split()
)
# Child words for people named with capitals ("Boy Pablo", "Youth Lagoon") count as names only when the
# name does not belong to a children's organisation ("Girl Scouts", "Boys and Girls Club").
CHILDREN_ORGANISATION_WORDS = frozenset(
    "scout scouts guide guides brownie brownies cub cubs club clubs nursery daycare kindergarten preschool school "
    "creche playgroup academy".split()
)
# Words that make capitals a performer's, a work's or a place's name: "Kid Koala at the turntables".
NAME_CONTEXT_WORDS = frozenset(
    (
        "concert concerts album albums band bands song songs lyrics tour gig stage live singer rapper rapping "
        "singing performing performs performer dj turntables mural poster posters record records vinyl festival "
        "movie film show series episode trailer novel author book cover track remix radio studio statue "
        "castle museum university campus stadium logo restaurant pizzeria cafe bistro bakery brand delivery"
    ).split()
)
# Goods and places for children, named after them: "kids' bike for sale", "girls' shoes on a shelf",
# "a children's hospital at night". A child word before one of these (or after "for") is what the thing is
# for; with no child elsewhere in the text it is no child in the picture.
GOODS_NOUNS = frozenset(
    (
        "book books menu menus bike bikes bicycle bicycles tricycle scooter scooters bed beds frame frames crib "
        "cribs cot chair chairs seat seats stroller strollers pram diaper diapers nappies bottle bottles warmer "
        "toothbrush toothbrushes toothpaste cup cups toy toys puzzle puzzles gate gates swing swings slide clothes "
        "clothing shoe shoes boot boots sneakers trainers jacket jackets coat coats dress dresses uniform uniforms "
        "pajamas pyjamas size sizes section department aisle store shop shops boutique hospital museum library "
        "playground playgrounds restroom restrooms toilet toilets bathroom sign signs entrance exterior "
        "logo encyclopedia encyclopedias magazine magazines furniture wear fashion supplies kit kits set sets food "
        "formula wipes shampoo lotion vitamins medicine meal meals box boxes tin tins jar jars pack packs packet "
        "bag bags can cans cereal channel programme program cartoon cartoons costume costumes backpack backpacks "
        "lunchbox helmet helmets football ball balls stick sticks racket skis bat gloves mittens hat hats socks "
        "bib bibs blanket blankets mattress monitor carrier trampoline tent playhouse kitchen sunscreen sandals "
        "wellies raincoat raincoats swimsuit swimsuits leggings tights ward clinic aisle catalog catalogue "
        "fiction novels shelf shelves rack racks display displays window counter stall label labels tag tags "
        "advert advertisement scissors toothpaste tube tubes headphones earphones snack snacks doll dolls apron "
        "aprons spoon spoons fork forks plate plates bowl bowls cutlery pencil pencils crayons markers stickers "
        "sticker tablet tablets camera watch watches umbrella umbrellas towel towels pillow pillows lamp lamps "
        "nightlight wallpaper paint glue skateboard skateboards juice yogurt yoghurt biscuits crackers cereal "
        "vitamin syrup plaster plasters bandage bandages mask masks sunglasses goggles lifejacket floaties "
        "bookshop bookshops bookstore bookstores toyshop toyshops toystore toystores "
        "armbands bucket buckets spade spades kite kites blocks lego puzzle jigsaw boardgame bunkbed bunk "
        "highchair stroller buggy pushchair car cars truck trucks train trains tricycles trikes wagon sled "
        "sledge bath bathtub potty nappy onesie onesies romper rompers mittens beanie scarf gloves wellingtons "
        "umbrella tote toybox wardrobe dresser drawers desk desks lamp rug rugs curtains duvet quilt "
        "sheets linen hanger hangers mannequin mannequins catalogue flyer leaflet brochure poster posters"
    ).split()
)
# What goods do in a picture: "school uniforms for boys hanging in a window".
GOODS_VERBS = frozenset("hanging hung drying folded stacked displayed lined piled arranged packed wrapped".split())
# Endings of words for goods: "swimwear", "sleepwear", "glassware".
GOODS_SUFFIXES = ("wear", "ware")
# Words for a young person that are no child word alone ("lads on a night out"), but are with an age: "a lad of ten".
LAD_WORDS = frozenset("lad lads lass lasses laddie".split())
# Nouns in -ing that go on naming the thing ("a children's hospital building"), not children doing something.
GOODS_ING_NOUNS = frozenset(
    "building buildings clothing bedding packaging housing wrapping lighting seating waiting".split()
)
# Child words that name who goods are for.
GOODS_OWNERS = frozenset(
    "child kid kiddie baby toddler infant newborn boy girl teen teenage tween preteen youth junior".split()
)
# Titles made of everyday phrases ("the young ones at the pool" is about children): they count only
# when written with capitals, in a text whose capitals mean something (it has lower-case words too).
TITLES: tuple[str, ...] = (
    "The Young Ones",
    "Bad Boys",
    "Lost Boys",
    "The Lost Boys",
    "The Kids Are Alright",
    "Boys Don't Cry",
    "Children of Men",
    "Young Guns",
    "Little Women",
    "The Boys",
)
SMALL_TITLE_WORDS = frozenset({"the", "of", "a", "an", "are", "and", "in", "on", "to"})

# A child word is excused when one of these words comes right after it, or before it with only
# filler words between: a goat's kid ("goat kids", "a doe with her twin kids"), an eye's pupil.
NEAR_WORDS: dict[str, frozenset[str]] = {
    "kid": frozenset("goat goats doe does nanny billy goatling dairy pygmy".split()),
    "pupil": frozenset("eye eyes iris dilated dilation dilate constricted retina cornea eyeball cat's cats".split()),
}
NEAR_FILLER = frozenset("her its their with and of the a two three twin newborn baby little young new".split())
NEAR_WINDOW = 4
# "minor"/"minors" is an adjective when one of these follows (a minor chord) — or any other noun.
MINOR_NOTES = frozenset("a b c d e f g a# b# c# d# e# f# g# sharp flat".split())
