"""Metrics: mIoU from a confusion matrix, COCO AP through pycocotools."""
