import torch

from utils.knn import knn_predict


def test_weighted_vote_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(40, 6, generator=g), dim=1)
    labels = torch.randint(0, 4, (40,), generator=g)
    queries = torch.nn.functional.normalize(torch.randn(9, 6, generator=g), dim=1)
    predicted = knn_predict(bank, labels, queries, num_classes=4, k=5, temperature=0.5, chunk=4)
    for q, p in zip(queries, predicted):
        sims = bank @ q
        votes = torch.zeros(4)
        for i in sims.argsort(descending=True)[:5]:
            votes[labels[i]] += torch.exp(sims[i] / 0.5)
        assert votes.argmax() == p


def test_separated_clusters_are_recovered():
    centres = torch.eye(3)
    bank = torch.nn.functional.normalize(centres.repeat_interleave(5, 0) + 0.05 * torch.randn(15, 3), dim=1)
    labels = torch.arange(3).repeat_interleave(5)
    assert torch.equal(knn_predict(bank, labels, centres, num_classes=3, k=5), torch.arange(3))
