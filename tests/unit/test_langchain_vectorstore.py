"""LangChain interop: the index as a LangChain VectorStore and retriever (LangChain's own standard test
suites, against a real index on a tmp dir with the real MiniLM embedder), ingest from real LangChain
loaders (sync and async), and the caller's access bound into every view."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import ragroute
from langchain_community.document_loaders import DirectoryLoader, TextLoader
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import RetrieversIntegrationTests, VectorStoreIntegrationTests
from ragroute.tools.embeddings import LangChainEmbedder
from ragroute.tools.errors import ConfigError, IngestError, InputError
from ragroute.tools.index import HybridIndex
from ragroute.tools.ingest import aingest_documents, ingest_documents
from ragroute.tools.lc_vectorstore import IndexVectorStore
from ragroute.tools.retrieval_tools import HybridRetriever
from ragroute.tools.types import AccessScope

HR = AccessScope(groups=["hr"], clearance=0)
LEAVE = "Holiday policy: 30 days of leave."
RETRIEVER_CORPUS = [
    "Access tokens expire after 24 hours; refresh them with the refresh endpoint.",
    "Rotate API tokens every 90 days and revoke leaked tokens at once.",
    "Tokens for service accounts are issued by the admin console.",
    "Deployment uses Docker Compose; the index lives under /var/lib/ragroute.",
    "Password resets send a one-time link that expires in 15 minutes.",
]


@pytest.fixture
def index(tmp_path: Any, embedder: Any) -> Iterator[HybridIndex]:
    """A fresh, empty index on a tmp dir (the session's MiniLM embedder: opening one takes ~0.3 s)."""
    idx = HybridIndex.open(str(tmp_path / "index"), embedder=embedder)
    yield idx
    idx.close()


class TestIndexVectorStoreStandard(VectorStoreIntegrationTests):
    """LangChain's VectorStore suite, sync and async. Every test document there is a few words: one chunk,
    so documents come back exactly as added (longer ones come back as chunks from searches)."""

    @pytest.fixture
    def vectorstore(self, index: HybridIndex) -> VectorStore:  # type: ignore[override]
        return index.as_vectorstore(all_access=True)


def _shared_index(self: Any, request: Any, embedder: Any, tmp_path_factory: Any) -> Iterator[HybridIndex]:
    """One index with RETRIEVER_CORPUS per test class (the suite's k test builds retrievers itself)."""
    idx = HybridIndex.open(str(tmp_path_factory.mktemp("retriever") / "index"), embedder=embedder)
    idx.as_vectorstore().add_texts(RETRIEVER_CORPUS)
    request.cls.shared_index = idx
    yield idx
    idx.close()


class TestHybridRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's retriever suite for HybridRetriever (k in the constructor and per call)."""

    shared_index: HybridIndex
    _index = pytest.fixture(scope="class", autouse=True)(_shared_index)

    @property
    def retriever_constructor(self) -> type[HybridRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self.shared_index, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "when do tokens expire"


def _vectorstore_retriever(index: HybridIndex, k: int) -> Any:
    return index.as_retriever(search_kwargs={"k": k})


class TestIndexAsRetrieverStandard(RetrieversIntegrationTests):
    """The same suite for `index.as_retriever(search_kwargs={"k": ...})` (LangChain's VectorStoreRetriever
    over our VectorStore view)."""

    shared_index: HybridIndex
    _index = pytest.fixture(scope="class", autouse=True)(_shared_index)

    @property
    def retriever_constructor(self) -> Any:
        return _vectorstore_retriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self.shared_index, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "when do tokens expire"


# ---------------------------------------------------------------------- ingest from LangChain loaders
@pytest.fixture
def text_files(tmp_path: Any) -> Any:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tokens.txt").write_text("API tokens expire after 24 hours unless refreshed.\n")
    (folder / "deploy.txt").write_text("Deploy the service with Docker Compose on port 8080.\n")
    return folder


def test_ingest_documents_takes_a_langchain_loader(index: HybridIndex, text_files: Any) -> None:
    loader = DirectoryLoader(str(text_files), glob="*.txt", loader_cls=TextLoader)
    report = ingest_documents(index, loader, progress=False)
    paths = {str(text_files / "tokens.txt"), str(text_files / "deploy.txt")}
    assert set(report.added) == paths and not report.failed
    hit = index.search("when do tokens expire", k=1, access=AccessScope.public())[0]
    assert hit.doc_id == str(text_files / "tokens.txt") and hit.metadata["source"] == hit.doc_id
    again = ingest_documents(index, loader.load(), progress=False)  # a list of LangChain Documents
    assert set(again.unchanged) == paths


async def test_aingest_documents_takes_a_loader_and_documents(index: HybridIndex, text_files: Any) -> None:
    report = await aingest_documents(index, TextLoader(str(text_files / "deploy.txt")), progress=False)
    assert report.added == [str(text_files / "deploy.txt")]
    pages = [
        Document(
            page_content="Chapter one is about onboarding.", metadata={"source": "guide.pdf", "page": 0}
        ),
        Document(
            page_content="Chapter two is about offboarding.", metadata={"source": "guide.pdf", "page": 1}
        ),
    ]
    report = await aingest_documents(index, pages, progress=False)
    # pages of one file get one document each, not one replacing the other
    assert report.added == ["guide.pdf#page=0", "guide.pdf#page=1"]
    store = index.as_vectorstore()
    ids = await store.aadd_documents([Document(page_content="Async added note about quotas.", id="quota")])
    assert ids == ["quota"]
    found = await store.asimilarity_search("quotas", k=1)
    assert found[0].id == "quota"


def test_ingest_rejects_other_objects_by_name(index: HybridIndex) -> None:
    with pytest.raises(InputError, match="cannot ingest a dict"):
        ingest_documents(index, [{"page_content": "x"}], progress=False)


# ---------------------------------------------------------------------- access and filters
@pytest.fixture
def mixed_store(index: HybridIndex) -> HybridIndex:
    index.as_vectorstore(all_access=True).add_documents(
        [
            Document(
                page_content="Holiday policy: 30 days of leave.", metadata={"category": "policy"}, id="leave"
            ),
            Document(
                page_content="Salary bands for 2025: the policy on leave pay.",
                metadata={"category": "policy", "access_groups": ["hr"]},
                id="salary",
            ),
            Document(
                page_content="Leave requests go through the portal.", metadata={"category": "howto"}, id="how"
            ),
        ]
    )
    return index


def test_as_retriever_applies_filters_and_the_bound_access(mixed_store: HybridIndex) -> None:
    public = mixed_store.as_retriever(search_kwargs={"k": 10, "filter": {"category": "policy"}})
    assert [d.id for d in public.invoke("leave policy salary")] == ["leave"]
    unfiltered = mixed_store.as_retriever(search_kwargs={"k": 10}).invoke("salary bands leave pay")
    assert "salary" not in {d.id for d in unfiltered} and {d.id for d in unfiltered} == {"leave", "how"}
    hr = mixed_store.as_retriever(HR, search_kwargs={"k": 10, "filter": {"category": "policy"}})
    assert {d.id for d in hr.invoke("salary bands")} == {"leave", "salary"}
    everything = mixed_store.as_vectorstore(all_access=True).similarity_search("salary", k=10)
    assert {d.id for d in everything} == {"leave", "salary", "how"}


def test_public_view_cannot_read_replace_or_delete_a_restricted_document(mixed_store: HybridIndex) -> None:
    store = mixed_store.as_vectorstore()
    assert store.get_by_ids(["salary", "leave"]) == [
        Document(
            page_content="Holiday policy: 30 days of leave.", metadata={"category": "policy"}, id="leave"
        )
    ]
    with pytest.raises(IngestError, match="cannot be written"):
        store.add_documents([Document(page_content="overwritten", id="salary")])
    store.delete(["salary"])
    assert mixed_store.document_metadata("salary") is not None
    with pytest.raises(InputError, match="bound"):  # the scope is not a search argument
        store.similarity_search("salary", k=3, access=None)
    assert [d.id for d in mixed_store.as_vectorstore(HR).get_by_ids(["salary"])] == ["salary"]


def test_from_texts_on_an_index_that_embeds_with_langchain_embeddings(tmp_path: Any) -> None:
    fake = DeterministicFakeEmbedding(size=16)
    index = ragroute.open_index(tmp_path / "index", embedder=LangChainEmbedder(fake))
    try:
        store = IndexVectorStore.from_texts(["alpha beta", "gamma delta"], None, index=index, ids=["a", "g"])
        assert [d.id for d in store.similarity_search("gamma", k=1)] == ["g"]
        assert len(store.embeddings.embed_query("x")) == 16
        with pytest.raises(ConfigError, match="own embedder"):
            IndexVectorStore.from_texts(["x"], fake, index=index)
    finally:
        index.close()


def test_public_api_exports_the_vectorstore_and_no_document_name() -> None:
    assert "Document" not in ragroute.__all__ and not hasattr(ragroute, "Document")
    assert issubclass(ragroute.IndexVectorStore, VectorStore)
    assert ragroute.ingest_documents is ingest_documents and ragroute.aingest_documents is aingest_documents
    assert IndexVectorStore is ragroute.IndexVectorStore
