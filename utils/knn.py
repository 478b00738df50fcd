"""A k-nearest-neighbour monitor of representation quality (Wu et al., 2018), used during pre-training."""
from __future__ import annotations

import torch


@torch.no_grad()
def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int,
                k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """Weighted k-NN vote on L2-normalised features: each of a query's k most cosine-similar bank items
    votes for its label with weight exp(similarity / temperature). Returns the predicted labels."""
    k = min(k, bank.shape[0])
    predictions = []
    for start in range(0, queries.shape[0], chunk):
        similarity, neighbour = (queries[start:start + chunk] @ bank.t()).topk(k, dim=1)
        votes = torch.zeros(similarity.shape[0], num_classes, device=bank.device)
        votes.scatter_add_(1, bank_labels[neighbour], (similarity / temperature).exp())
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracy(embed, bank_set, test_set, k: int, device) -> float:
    """Weighted k-NN top-1 accuracy (%) of ``test_set`` against ``bank_set`` (the training split, its labels
    the memory bank's); ``embed(dataset)`` gives the normalised features of a dataset."""
    bank_labels = torch.as_tensor(bank_set.labels, device=device)
    test_labels = torch.as_tensor(test_set.labels, device=device)
    predicted = knn_predict(embed(bank_set), bank_labels, embed(test_set),
                            int(max(bank_labels.max(), test_labels.max())) + 1, k=k)
    return (predicted == test_labels).float().mean().item() * 100
